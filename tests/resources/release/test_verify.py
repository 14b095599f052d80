"""`assay verify`: a release verifies offline; any changed, added or removed file fails it, and
so does revocation. The stock `model_signing verify key` accepts the same directory."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.params import load_params
from resources.core.ledger import Ledger
from resources.core.signing import Signer
from resources.release.keys import key_path
from resources.release.revocation import revoke
from resources.release.stage import run as release_run
from resources.release.verify import verify_release

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))


@pytest.fixture(scope="module")
def released(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PASSED release, made once; tests copy it. Returns the release directory."""
    root = tmp_path_factory.mktemp("released") / "project"
    shutil.copytree(trained_template.parent, root)
    params = load_params(root / "params.yaml")
    outcome = release_run(params.release, Ledger(params.ledger_path), "r", params.corpus())
    assert outcome.verdict.passed, outcome.verdict
    return outcome.path


@pytest.fixture
def release_copy(released: Path, tmp_path: Path) -> Path:
    """A copy of the release and its revocation list, as a downstream user receives them."""
    dest = tmp_path / "releases" / released.name
    shutil.copytree(released, dest)
    shutil.copy(released.parent / "revocations.json", dest.parent / "revocations.json")
    return dest


def failed(checks) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def test_a_release_verifies_offline(release_copy):
    assert failed(verify_release(release_copy)) == {}


def test_verify_command_exits_0_and_names_each_check(release_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: a downstream user's view
    result = CliRunner().invoke(cli, ["verify", str(release_copy), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    names = {c["name"] for c in out["checks"]}
    assert out["ok"] and {"key", "signature", "subjects", "verdict", "revocation"} <= names


def test_the_stock_model_signing_cli_accepts_it(release_copy):
    done = subprocess.run(
        [MODEL_SIGNING, "verify", "key", str(release_copy),
         "--signature", str(release_copy / "model.sig"),
         "--public_key", str(release_copy / "keys" / "release.pub.pem")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification succeeded" in done.stdout + done.stderr


def release_files(released: Path) -> list[str]:
    return sorted(str(p.relative_to(released)) for p in released.rglob("*") if p.is_file())


RELEASE_FILES = [
    "attestations/provenance.dsse.json",
    "attestations/verdict.dsse.json",
    "config.json",
    "croissant.json",
    "evidence/auditor.html",
    "evidence/dataset_card.md",
    "evidence/model_card.md",
    "evidence/transparency_report.json",
    "evidence/transparency_report.md",
    "keys/fingerprint.txt",
    "keys/release.pub.pem",
    "model.pt",
    "model.sig",
    "policy/data.json",
    "policy/facts.json",
    "policy/release.rego",
    "policy/verdict.json",
    "preprocessing.json",
    "training_set.jsonl",
]
"""Every file a release holds, in sorted order."""


def test_the_release_holds_what_it_should(released):
    assert release_files(released) == RELEASE_FILES
    manifest = (released / "training_set.jsonl").read_text().splitlines()
    assert set(json.loads(manifest[0])) == {"record_id", "source_id"}  # ids, never content


@pytest.mark.parametrize("name", RELEASE_FILES)
def test_changing_or_removing_any_file_fails(release_copy, name):
    path = release_copy / name
    original = path.read_bytes()
    path.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])
    assert failed(verify_release(release_copy)), f"changed {name} still verifies"
    path.unlink()
    problems = failed(verify_release(release_copy))
    assert problems, f"removed {name} still verifies"
    if name == "keys/release.pub.pem":
        assert "no public key" in problems["key"]
    elif name != "model.sig":
        assert problems["files"] == f"missing: {name}"


@pytest.mark.parametrize("name", ["extra.txt", "policy/more.json", ".gitignore"])
def test_an_added_file_fails(release_copy, name):
    (release_copy / name).write_text("{}")
    problems = failed(verify_release(release_copy))
    assert problems["files"] == f"extra: {name}"
    assert "differ from the signed manifest" in problems["signature"]


def test_a_changed_model_names_the_file(release_copy):
    (release_copy / "model.pt").write_bytes(b"not the model")
    problems = failed(verify_release(release_copy))
    assert problems["files"] == "changed: model.pt"
    assert "model.pt" in problems["subjects"]


def test_another_key_is_refused_when_pinned(release_copy):
    problems = failed(
        verify_release(release_copy, trusted_fingerprint=Signer.generate().fingerprint)
    )
    assert "not the trusted key" in problems["key"]


def test_without_a_revocation_list_it_does_not_verify(release_copy):
    (release_copy.parent / "revocations.json").unlink()
    assert "no revocation list" in failed(verify_release(release_copy))["revocation"]


def test_a_rescreen_match_in_a_released_record_revokes_it(trained_template, tmp_path):
    """What rescreen does: an incident and a taint for a released record, then revoke()."""
    root = tmp_path / "project"
    shutil.copytree(trained_template.parent, root)
    params = load_params(root / "params.yaml")
    ledger = Ledger(params.ledger_path)
    first = release_run(params.release, ledger, "r1", params.corpus())
    assert first.verdict.passed and not failed(verify_release(first.path, ledger=ledger))

    record = ledger.query(
        "SELECT record_id FROM training_set WHERE role = 'member' ORDER BY record_id LIMIT 1"
    ).item()
    ledger.append(
        "incidents", [{"incident_id": "inc-9", "kind": "retroactive", "record_id": record}]
    )
    ledger.append(
        "tainted_runs",
        [{"training_run_id": "train-run", "incident_id": "inc-9", "record_id": record,
          "role": "member"}],
        "rescreen-run",
    )  # fmt: skip
    key = Signer.load(key_path(params.root, params.release.signing_key))
    revoked = revoke(
        ledger, record_ids=[record], reason="harmful_hash_match", incident_ids=["inc-9"], key=key
    )
    assert revoked == [first.release_id]
    assert revoke(ledger, [first.release_id], reason="again", key=key) == []  # once only

    problems = failed(verify_release(first.path, ledger=ledger))
    assert list(problems) == ["revocation"]
    assert "REVOKED" in problems["revocation"] and "harmful_hash_match" in problems["revocation"]
    assert "inc-9" in problems["revocation"]
    offline = failed(verify_release(first.path))  # from the exported list alone
    assert list(offline) == ["revocation"]
    row = ledger.query("SELECT * FROM revocations").to_dicts()
    assert [r["release_id"] for r in row] == [first.release_id] and row[0]["signature"]
    assert ledger.verify(key.fingerprint).ok

    # the gate now blocks a successor trained on the same run: the run is tainted
    second = release_run(params.release, ledger, "r2", params.corpus())
    assert not second.verdict.passed
    assert {v["rule"] for v in second.verdict.violations} == {"open_incident", "tainted_run"}
    verdict = json.loads((second.path / "policy" / "verdict.json").read_text())
    assert verdict["supersedes"] == first.release_id  # the successor names its predecessor


def test_a_forged_revocation_list_is_refused(release_copy):
    path = release_copy.parent / "revocations.json"
    document = json.loads(path.read_text())
    document["revocations"] = []
    document["issued_at"] = "2030-01-01T00:00:00+00:00"
    path.write_text(json.dumps(document))
    assert "does not verify" in failed(verify_release(release_copy))["revocation"]
