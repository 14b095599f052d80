"""Checks of a release's evidence against its ledger, for a real run (tests/e2e/test_run.py)."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from resources.core import audit
from resources.core.ledger import Ledger

MLCROISSANT = str(Path(sys.executable).with_name("mlcroissant"))


def assert_release_evidence_is_the_ledgers(release: Path, ledger: Ledger) -> None:
    """The cards, Croissant file, report and page exist; the report's counts are the auditor's
    queries' (resources/core/audit.py) and its privacy figures the training run's rows."""
    for name in ("croissant.json", "evidence/dataset_card.md", "evidence/model_card.md",
                 "evidence/transparency_report.md", "evidence/auditor.html"):  # fmt: skip
        assert (release / name).is_file(), name
    report = json.loads((release / "evidence/transparency_report.json").read_text())
    counts = audit.latest_counts(ledger).drop("recorded_at").sort("stage", "source_id")
    assert report["stage_counts"] == counts.to_dicts()
    reasons = audit.latest_drop_reasons(ledger).group_by("stage", "reason").agg(pl.col("n").sum())
    assert {(d["stage"], d["reason"]): d["records"] for d in report["drops"]} == {
        (r["stage"], r["reason"]): r["n"] for r in reasons.to_dicts()
    }
    incidents = ledger.query("SELECT count(DISTINCT incident_id) FROM incidents").item()
    assert report["totals"]["incidents"] == incidents
    run = audit.latest_training(ledger)
    assert report["training"]["epsilon"] == run["epsilon"]
    assert report["training"]["delta"] == run["delta"]
    pii = ledger.query(
        "SELECT entity_type, sum(entities) AS n FROM pii_counts WHERE run_id = ? GROUP BY ALL",
        [report["pii_residual"]["run_id"]],
    )
    assert {p["entity_type"]: p["entities"] for p in report["pii"]} == dict(pii.iter_rows())
    done = subprocess.run(
        [MLCROISSANT, "validate", "--jsonld", str(release / "croissant.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
