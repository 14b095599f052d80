"""The facts the release gate decides on, read from the ledger and the artifacts' hashes alone.

Every key is always present (None when the ledger has no value), so a policy rule comparing a
missing measurement sees null and denies rather than being skipped.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from resources.core.audit import latest_training
from resources.core.ledger import Ledger
from resources.core.storage import file_sha256

EVALUATION_KEYS = ("mia_auc", "mia_tpr_at_1pct_fpr", "canary_exposure_max", "attr_advantage")


def members(ledger: Ledger, run_id: str) -> pl.DataFrame:
    """The record ids and sources a run trained on."""
    return ledger.query(
        "SELECT record_id, source_id FROM training_set WHERE run_id = ? AND role = 'member'"
        " ORDER BY source_id, record_id",
        [run_id],
    )


def source_facts(ledger: Ledger, run_id: str) -> list[dict]:
    """Per source of the training records: its latest license and consent, and record count."""
    return ledger.query(
        "WITH latest AS (SELECT source_id, license, consent FROM sources"
        " QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1)"
        " SELECT t.source_id, l.license, l.consent, count(*) AS records"
        " FROM training_set t LEFT JOIN latest l USING (source_id)"
        " WHERE t.run_id = ? AND t.role = 'member' GROUP BY ALL ORDER BY t.source_id",
        [run_id],
    ).to_dicts()


def incident_facts(ledger: Ledger, run_id: str) -> list[dict]:
    """Incidents naming a training record. The ledger has no way to close one: all are open."""
    return ledger.query(
        "SELECT DISTINCT i.incident_id, i.record_id FROM incidents i JOIN training_set t"
        " ON i.record_id = t.record_id WHERE t.run_id = ? AND t.role = 'member'"
        " ORDER BY i.incident_id",
        [run_id],
    ).to_dicts()


def taint_facts(ledger: Ledger, run_id: str) -> list[dict]:
    return ledger.query(
        "SELECT DISTINCT incident_id, record_id, 'record in the training set as ' || role"
        " AS reason FROM tainted_runs WHERE training_run_id = ?"
        " ORDER BY incident_id, record_id",
        [run_id],
    ).to_dicts()


def pii_residual_facts(ledger: Ledger) -> dict:
    """The latest scrub run's residual re-scan: the worst source's entities per 10k docs (the
    upper bound of that rate where the source was read on a sample: `sampled`).

    A scrub run with no residual rows found nothing; no scrub run at all is not measured. A run
    from before pii_rescans existed (or a ledger never written since, read-only) has its rate
    from pii_residuals, whose re-scans read every text.
    """
    unmeasured = {"measured": False, "max_per_10k": None, "source_id": None, "run_id": None}
    with ledger.reader() as reader:
        last = reader.query(
            "SELECT run_id FROM stage_counts WHERE stage = 'scrub' ORDER BY entry_seq DESC LIMIT 1"
        )
        if last.is_empty():
            return unmeasured | {"sampled": False, "confidence": None}
        run_id = last.item()
        worst = pl.DataFrame()
        if "pii_rescans" in reader.tables():
            worst = reader.query(
                "SELECT source_id, per_10k_upper AS per_10k, scanned < docs AS sampled,"
                " confidence FROM pii_rescans WHERE run_id = ?"
                " ORDER BY per_10k DESC, source_id LIMIT 1",
                [run_id],
            )
        if worst.is_empty():
            worst = reader.query(
                "SELECT source_id, 10000.0 * sum(residual) / max(docs) AS per_10k,"
                " false AS sampled, NULL::DOUBLE AS confidence FROM pii_residuals"
                " WHERE run_id = ? GROUP BY source_id ORDER BY per_10k DESC LIMIT 1",
                [run_id],
            )
    found = worst.row(0, named=True) if worst.height else {}
    return {
        "measured": True,
        "max_per_10k": found.get("per_10k", 0.0),
        "source_id": found.get("source_id"),
        "run_id": run_id,
        "sampled": bool(found.get("sampled", False)),
        "confidence": found.get("confidence") if found.get("sampled") else None,
    }


def evaluation_facts(ledger: Ledger, run_id: str | None, kind: str) -> dict:
    rows = ledger.query(
        "SELECT * FROM evaluations WHERE run_id = ? AND model_kind = ?"
        " ORDER BY entry_seq DESC LIMIT 1",
        [run_id, kind],
    )
    row = rows.row(0, named=True) if rows.height else {}
    return {key: row.get(key) for key in EVALUATION_KEYS}


def epsilon_cumulative(ledger: Ledger, run_id: str) -> float | None:
    rows = ledger.query(
        "SELECT epsilon_cumulative FROM privacy_budget WHERE run_id = ? AND status = 'committed'",
        [run_id],
    )
    return float(rows.item()) if rows.height else None


def artifact_facts(ledger: Ledger, paths: list[Path]) -> list[dict]:
    """Each file's sha256 on disk against the ledger's latest artifacts row for its path."""
    out = []
    for path in paths:
        rows = ledger.query(
            "SELECT sha256 FROM artifacts WHERE path = ? ORDER BY entry_seq DESC LIMIT 1",
            [str(path)],
        )
        recorded = rows.item() if rows.height else None
        actual = file_sha256(path) if path.exists() else None
        out.append({"path": str(path), "recorded": recorded, "actual": actual})
    return out


def upstream_artifacts(ledger: Ledger, stage: str) -> list[Path]:
    """The files of the stage trained on, as the ledger last recorded them."""
    rows = ledger.query(
        "SELECT DISTINCT path FROM artifacts WHERE stage = ? ORDER BY path", [stage]
    )
    return [Path(p) for p in rows["path"].to_list()]


def gather(ledger: Ledger, trusted_fingerprint: str | None) -> dict:
    """All the gate's facts about the latest training run."""
    run = latest_training(ledger) or {}
    run_id = run.get("run_id")
    verified = ledger.verify(trusted_fingerprint)
    files = ([Path(run["path"])] if run else []) + upstream_artifacts(ledger, run.get("upstream"))
    return {
        "training_run": {
            "run_id": run_id,
            "model_sha256": run.get("model_sha256"),
            "training_set_digest": run.get("training_set_digest"),
            "params_digest": run.get("params_digest"),
            "train_records": run.get("train_records"),
            "epsilon": run.get("epsilon"),
            "delta": run.get("delta"),
            "epsilon_cumulative": epsilon_cumulative(ledger, run_id) if run_id else None,
        },
        "sources": source_facts(ledger, run_id) if run_id else [],
        "incidents": incident_facts(ledger, run_id) if run_id else [],
        "taints": taint_facts(ledger, run_id) if run_id else [],
        "pii_residual": pii_residual_facts(ledger),
        "evaluation": evaluation_facts(ledger, run_id, "dp"),
        "reference_evaluation": evaluation_facts(ledger, run_id, "reference"),
        "ledger": {
            "ok": verified.ok,
            "entries": verified.entries,
            "checkpoints": verified.checkpoints,
            "first_bad": verified.first_bad,
            "problem": verified.problem,
        },
        "artifacts": artifact_facts(ledger, files),
        "model_recorded_sha256": run.get("model_sha256"),
    }
