"""A release's cards, Croissant file, transparency report and auditor's page: written, signed, and
every figure in them the ledger's (tests/resources/evidence/project.py injects the figures)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlcroissant as mlc
import polars as pl
import pytest
from click.testing import CliRunner
from huggingface_hub import DatasetCard, ModelCard

from pipelines.cli import cli
from pipelines.params import load_params
from resources.core import audit
from resources.core.ledger import Ledger
from resources.evidence.tables import figure
from resources.release.signing import signed_files
from tests.resources.evidence import project

MLCROISSANT = str(Path(sys.executable).with_name("mlcroissant"))


@pytest.fixture(scope="module")
def released(released_template) -> tuple[Path, Path]:
    """(params.yaml, release directory) of the session's release; read only."""
    params_file, output = released_template
    assert output["exit_code"] == 0, output
    return params_file, Path(output["path"])


def ledger_of(params_file: Path) -> Ledger:
    return Ledger(load_params(params_file).ledger_path)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def invoke(*args: str) -> dict:
    done = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def as_text(value: str | list[str]) -> str:
    """An RAI field as mlcroissant gives it: some are strings, some lists of strings."""
    return " ".join(value) if isinstance(value, list) else value


def dp_evaluation(ledger: Ledger) -> dict:
    return ledger.query(
        "SELECT * FROM evaluations WHERE model_kind = 'dp' ORDER BY entry_seq DESC LIMIT 1"
    ).to_dicts()[0]


def copied_project(params_file: Path, tmp_path: Path) -> Path:
    """A copy of the released project to change, leaving the shared fixture as it is."""
    shutil.copytree(params_file.parent, tmp_path / "project")
    return tmp_path / "project" / "params.yaml"


def test_the_release_holds_its_evidence_signed(released, released_template):
    params_file, release = released
    names = [
        "croissant.json", "evidence/dataset_card.md", "evidence/model_card.md",
        "evidence/transparency_report.json", "evidence/transparency_report.md",
        "evidence/auditor.html",
    ]  # fmt: skip
    signed = signed_files(release)
    for name in names:
        assert (release / name).is_file(), name
        assert name in signed, f"{name} is not covered by model.sig"
    assert released_template[1]["auditor_page"] == str(release / "evidence/auditor.html")
    revocations = release.parent / "revocations.json"
    verified = invoke("verify", "--params", str(params_file), "--revocations", str(revocations),
                      str(release))  # fmt: skip
    assert verified["ok"], verified


def test_the_reports_figures_are_the_ledgers(released):
    params_file, release = released
    ledger = ledger_of(params_file)
    doc = read_json(release / "evidence/transparency_report.json")
    totals = doc["totals"]
    assert totals["records_in"] == project.RECORDS_IN  # ingest-1, not the superseded ingest-0
    drops = {(d["stage"], d["reason"]): d["records"] for d in doc["drops"]}
    assert drops == project.DROPS
    assert {p["entity_type"]: (p["entities"], p["records"]) for p in doc["pii"]} == project.PII
    incidents = {(i["list_name"], i["list_version"], i["kind"]): i["incidents"]
                 for i in doc["incidents"]["by_list"]}  # fmt: skip
    assert incidents == project.INCIDENTS and totals["incidents"] == 3
    run = ledger.query("SELECT * FROM training_runs").to_dicts()[0]
    assert (totals["epsilon"], totals["delta"]) == (run["epsilon"], run["delta"])
    assert totals["training_records"] == run["train_records"]
    dp = next(e for e in doc["evaluations"] if e["model_kind"] == "dp")
    expected = dp_evaluation(ledger)
    for key in ("mia_auc", "mia_tpr_at_1pct_fpr", "canary_exposure_max", "attr_advantage"):
        assert dp[key] == expected[key], key
    recall = {(e["eval_set"], e["entity_type"]): (e["support"], e["recall"], e["precision"])
              for e in doc["pii_detector"]["entities"]}  # fmt: skip
    expected = {(project.EVAL_SET, e): f for e, f in project.RECALL.items()}
    expected |= {(project.SECOND_SET, e): f for e, f in project.SECOND_RECALL.items()}
    assert recall == expected and doc["pii_detector"]["detector"] == project.DETECTOR
    assert doc["pii_detector"]["caveats"]
    assert doc["release"]["status"] == "PASSED"
    assert {r["status"] for r in doc["gate"]["rules"]} == {"pass"}
    markdown = (release / "evidence/transparency_report.md").read_text()
    assert "| ingest | malformed | 5 |" in markdown and "| PERSON | 11 | 9 |" in markdown
    assert f"ε = {figure(run['epsilon'])}" in markdown


def test_the_cards_are_hugging_face_cards_with_the_ledgers_figures(released):
    params_file, release = released
    ledger = ledger_of(params_file)
    dataset = DatasetCard.load(release / "evidence/dataset_card.md")
    assert dataset.data.license == "cc-by-4.0"
    assert dataset.data.source_datasets == ["https://example.org/forum", "https://example.org/wiki"]
    assert "| EMAIL_ADDRESS | 100 | 0.97 | 0.99 |" in dataset.text
    assert "| dedup | duplicate_exact | 2 |" in dataset.text
    assert project.OWNER in dataset.text
    model = ModelCard.load(release / "evidence/model_card.md")
    expected = dp_evaluation(ledger)
    metrics = {r.metric_type: r.metric_value for r in model.data.eval_results}
    assert metrics["mia_auc"] == expected["mia_auc"]
    assert metrics["canary_exposure_max"] == expected["canary_exposure_max"]
    assert metrics["attr_advantage"] == expected["attr_advantage"]
    assert "MIA AUC" in model.text and figure(expected["mia_auc"]) in model.text
    assert "Verdict: PASSED." in model.text


def test_the_croissant_file_validates_and_describes_the_training_set(released):
    _, release = released
    done = subprocess.run(
        [MLCROISSANT, "validate", "--jsonld", str(release / "croissant.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    dataset = mlc.Dataset(jsonld=release / "croissant.json")
    records = list(dataset.records("records"))
    manifest = (release / "training_set.jsonl").read_text().splitlines()
    assert len(records) == len(manifest)
    assert records[0]["records/record_id"].decode() == json.loads(manifest[0])["record_id"]
    meta = dataset.metadata
    assert "EMAIL_ADDRESS 7" in as_text(meta.data_manipulation_protocol)
    assert "PERSON 0.912" in as_text(meta.personal_sensitive_information)
    assert "revoked" in as_text(meta.data_release_maintenance_plan)
    document = read_json(release / "croissant.json")
    derived = document["prov:wasDerivedFrom"]
    assert [s["license"] for s in derived] == ["https://spdx.org/licenses/CC-BY-4.0.html"] * 2
    generated = {a["name"] for a in document["prov:wasGeneratedBy"]}
    assert generated == {"ingest", "dedup", "scrub", "train"}


def test_no_source_key_or_record_id_is_in_the_evidence(released):
    params_file, release = released
    ledger = ledger_of(params_file)
    ids = ledger.query("SELECT record_id FROM training_set")["record_id"].to_list()
    ids += ledger.query("SELECT record_id FROM drops")["record_id"].to_list()
    for name in [
        "croissant.json",
        *(f"evidence/{p.name}" for p in (release / "evidence").iterdir()),
    ]:
        text = (release / name).read_text(encoding="utf-8")
        assert "secret-key-" not in text, name
        assert not [i for i in ids if i in text], name


def test_a_failed_runs_figures_do_not_show(released):
    _, release = released
    doc = read_json(release / "evidence/transparency_report.json")
    assert {r["run_id"] for r in doc["stage_counts"]}.isdisjoint({"scrub-dead", "ingest-0"})
    assert doc["totals"]["pii_entities"] == sum(n for n, _ in project.PII.values())


def test_a_releases_report_regenerates_the_same_after_the_ledger_grows(released, tmp_path):
    params_file, release = released
    copied = copied_project(params_file, tmp_path)
    ledger = ledger_of(copied)
    ledger.append("incidents", [{"incident_id": "inc-later", "kind": "new", "list_name": "demo",
                                 "list_version": "v1", "record_id": "later"}])  # fmt: skip
    ledger.append("drops", [{"stage": "dedup", "reason": "duplicate_near", "source_id": "forum",
                             "record_id": "x"}], "dedup-1")  # fmt: skip
    release_copy = copied.parent / release.relative_to(params_file.parent)
    out = invoke("report", "--params", str(copied), "--release", str(release_copy),
                 "--out", str(tmp_path / "again"))  # fmt: skip
    again = Path(out["written"]["report_json"]).read_text()
    assert again == (release / "evidence/transparency_report.json").read_text()
    now = invoke("report", "--params", str(copied), "--out", str(tmp_path / "now"))
    doc = read_json(Path(now["written"]["report_json"]))
    assert doc["scope"] == "ledger" and doc["totals"]["incidents"] == 4
    assert ("dedup", "duplicate_near") in {(d["stage"], d["reason"]) for d in doc["drops"]}
    assert [r["release_id"] for r in doc["releases"]] == [release.name]
    assert Path(now["written"]["auditor_page"]).stat().st_size > 1_000_000  # plotly inlined


def test_the_ledgers_report_agrees_with_the_auditors_queries(released, tmp_path):
    params_file, _ = released
    out = invoke("report", "--params", str(params_file), "--out", str(tmp_path))
    doc = read_json(Path(out["written"]["report_json"]))
    ledger = ledger_of(params_file)
    counts = audit.latest_counts(ledger).drop("recorded_at").sort("stage", "source_id").to_dicts()
    assert doc["stage_counts"] == counts
    reasons = audit.latest_drop_reasons(ledger).group_by("stage", "reason").agg(pl.col("n").sum())
    assert {(r["stage"], r["reason"]): r["n"] for r in reasons.to_dicts()} == {
        (d["stage"], d["reason"]): d["records"] for d in doc["drops"]
    }
    assert doc["gate"]["status"] == "PASSED"  # the gate as it would decide now


def test_a_blocked_release_gets_the_report_and_page_but_no_cards(released, tmp_path):
    params_file, _ = released
    copied = copied_project(params_file, tmp_path)
    ledger = ledger_of(copied)
    source = {"source_id": "wiki", "license": "LicenseRef-Scraped", "consent": "opt_in"}
    ledger.append("sources", [source])
    member = ledger.query("SELECT min(record_id) FROM training_set WHERE role = 'member'").item()
    ledger.append("incidents", [{"incident_id": "inc-open", "kind": "new", "record_id": member}])
    output = project.release(copied)
    assert output["exit_code"] == 3 and output["status"] == "FAILED"
    release = Path(output["path"])
    assert not (release / "croissant.json").exists()
    assert not (release / "evidence/model_card.md").exists()
    doc = read_json(release / "evidence/transparency_report.json")
    failed = {r["rule"] for r in doc["gate"]["rules"] if r["status"] == "fail"}
    assert failed == {"license", "open_incident"}
    page = (release / "evidence/auditor.html").read_text()
    assert "LicenseRef-Scraped" in page and "inc-open" in page
    for name in ("auditor.html", "transparency_report.json", "transparency_report.md"):
        assert member not in (release / "evidence" / name).read_text(), name


def test_the_ledger_is_left_unchanged_by_a_report(released, tmp_path):
    params_file, _ = released
    before = ledger_of(params_file).verify().entries
    invoke("report", "--params", str(params_file), "--out", str(tmp_path))
    assert ledger_of(params_file).verify().entries == before
