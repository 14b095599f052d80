"""The default policy: each rule, violated alone, blocks with exit 3, its reason, and no PASSED
verdict; a clean project passes. Through `assay release`, as a user runs it."""

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.params import load_params
from resources.core.ledger import Ledger


def release(params_file: Path, *extra: str):
    args = ["release", "--params", str(params_file), "--json", *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def ledger_of(params_file: Path) -> Ledger:
    return Ledger(load_params(params_file).ledger_path)


def set_release_param(params_file: Path, **values: float) -> None:
    raw = yaml.safe_load(params_file.read_text())
    raw["release"] |= values
    params_file.write_text(yaml.safe_dump(raw))


def a_member(ledger: Ledger) -> str:
    return ledger.query(
        "SELECT record_id FROM training_set WHERE role = 'member' ORDER BY record_id LIMIT 1"
    ).item()


def newer_dp_evaluation(**changed: float):
    def apply(params_file: Path) -> None:
        ledger = ledger_of(params_file)
        row = ledger.query("SELECT * FROM evaluations WHERE model_kind = 'dp'").to_dicts()[0]
        row = {k: v for k, v in row.items() if k not in ("entry_seq", "row_no", "recorded_at")}
        ledger.append("evaluations", [row | changed])

    return apply


def newer_source(**changed: str):
    def apply(params_file: Path) -> None:
        ledger = ledger_of(params_file)
        allowed = {"source_id": "forum", "license": "CC-BY-4.0", "consent": "opt_in"}
        ledger.append("sources", [allowed | changed])

    return apply


def open_incident(params_file: Path) -> None:
    ledger = ledger_of(params_file)
    record = a_member(ledger)
    ledger.append(
        "incidents", [{"incident_id": "inc-1", "kind": "retroactive", "record_id": record}]
    )


def tainted(params_file: Path) -> None:
    ledger = ledger_of(params_file)
    row = {"training_run_id": "train-run", "incident_id": "inc-2", "record_id": a_member(ledger)}
    ledger.append("tainted_runs", [row | {"role": "member"}])


def pii_left(params_file: Path) -> None:
    """A sampled re-scan whose rate is low but whose bound is over the limit: the bound counts."""
    row = {"source_id": "forum", "docs": 250_000, "scanned": 60, "residual": 0, "per_10k": 0.0}
    row |= {"per_10k_upper": 500.0, "confidence": 0.95}
    ledger_of(params_file).append("pii_rescans", [row], "setup-scrub")


def tampered_ledger(params_file: Path) -> None:
    con = duckdb.connect(str(load_params(params_file).ledger_path))
    con.execute("UPDATE training_set SET source_id = 'wiki' WHERE row_no = 0")
    con.close()


def changed_upstream_file(params_file: Path) -> None:
    """One byte added to the file the ledger names (the session's template: restored after)."""
    path = Path(
        ledger_of(params_file)
        .query("SELECT path FROM artifacts WHERE stage = 'scrub' AND source_id = 'forum'")
        .item()
    )
    CHANGED.append((path, path.read_bytes()))
    path.write_bytes(path.read_bytes() + b"\0")


CHANGED: list[tuple[Path, bytes]] = []


@pytest.fixture(autouse=True)
def restore_changed_files():
    yield
    while CHANGED:
        path, content = CHANGED.pop()
        path.write_bytes(content)


CASES = {
    "license": (newer_source(license="GPL-3.0-only"), "license GPL-3.0-only, not allowed"),
    "consent": (newer_source(consent="none"), "consent basis none, not allowed"),
    "open_incident": (open_incident, "open incident inc-1 touches training record"),
    "tainted_run": (tainted, "training run train-run is tainted by incident inc-2"),
    "pii_residual": (pii_left, "PII residual 500.00 per 10k docs (source forum) > 50"),
    "epsilon": (lambda p: set_release_param(p, max_epsilon=1.0), "epsilon 3.99"),
    "epsilon_cumulative": (
        lambda p: set_release_param(p, max_epsilon_cumulative=1.0),
        "epsilon_cumulative 4 > 1",
    ),
    "mia_auc": (newer_dp_evaluation(mia_auc=0.9), "mia_auc 0.9 > 0.6"),
    "mia_tpr_at_1pct_fpr": (
        newer_dp_evaluation(mia_tpr_at_1pct_fpr=0.5),
        "mia_tpr_at_1pct_fpr 0.5 > 0.05",
    ),
    "canary_exposure_max": (newer_dp_evaluation(canary_exposure_max=6.5), "6.5 > 6"),
    "attribute_advantage": (
        newer_dp_evaluation(attr_advantage=0.5),
        "attribute_advantage 0.5 > 0.25",
    ),
    "ledger": (tampered_ledger, "ledger verify failed at entry"),
    "artifact_digest": (changed_upstream_file, "forum.parquet: sha256 on disk"),
}


def test_a_clean_project_passes_and_is_recorded(release_project):
    result = release(release_project)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["status"] == "PASSED" and out["violations"] == []
    verdict = json.loads((Path(out["path"]) / "policy" / "verdict.json").read_text())
    assert verdict["status"] == "PASSED" and verdict["release_id"] == out["release_id"]
    rows = ledger_of(release_project).query("SELECT release_id, status FROM releases").rows()
    assert rows == [(out["release_id"], "PASSED")]


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_violated_alone_blocks(release_project, rule):
    violate, reason = CASES[rule]
    violate(release_project)
    result = release(release_project)
    assert result.exit_code == 3, result.output
    out = json.loads(result.output)
    assert out["status"] == "FAILED"
    assert [v["rule"] for v in out["violations"]] == [rule], out["violations"]
    assert reason in out["violations"][0]["reason"], out["violations"]
    # a signed FAILED verdict, and nowhere a PASSED one, a model or a provenance
    release_dir = Path(out["path"])
    verdict = json.loads((release_dir / "policy" / "verdict.json").read_text())
    assert verdict["status"] == "FAILED" and verdict["violations"] == out["violations"]
    assert (release_dir / "attestations" / "verdict.dsse.json").exists()
    assert not (release_dir / "model.pt").exists()
    assert not (release_dir / "attestations" / "provenance.dsse.json").exists()
    for path in release_dir.parent.rglob("verdict.json"):
        assert json.loads(path.read_text())["status"] != "PASSED"
    statuses = ledger_of(release_project).query("SELECT status FROM releases")["status"]
    if rule != "ledger":  # a tampered ledger still records the verdict; it just does not verify
        assert statuses.to_list() == ["FAILED"]


def test_check_evaluates_and_writes_nothing(release_project):
    set_release_param(release_project, max_epsilon=1.0)
    before = ledger_of(release_project).verify().entries
    result = release(release_project, "--check")
    assert result.exit_code == 3
    out = json.loads(result.output)
    assert out["path"] is None and [v["rule"] for v in out["violations"]] == ["epsilon"]
    assert not (release_project.parent / "data" / "release").exists()
    assert ledger_of(release_project).verify().entries == before


def test_a_missing_measurement_blocks(release_project):
    """Fail closed: a null metric denies (no attribute-inference result here)."""
    newer_dp_evaluation(attr_advantage=None)(release_project)
    out = json.loads(release(release_project, "--check").output)
    assert out["violations"] == [
        {
            "rule": "attribute_advantage",
            "reason": "attribute_advantage is not in the ledger (limit 0.25)",
        }
    ]


def test_no_key_is_a_clear_error(release_project, monkeypatch):
    from resources.release.keys import MissingKeyError

    monkeypatch.setenv("ASSAY_SIGNING_KEY", str(release_project.parent / "nowhere.pem"))
    with pytest.raises(MissingKeyError, match="run `assay keys init`"):
        release(release_project)
    assert not (release_project.parent / "data" / "release").exists()
