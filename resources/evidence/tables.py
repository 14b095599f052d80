"""The evidence's tables, defined once: (header, rows) from resources/evidence/facts.py's figures.

The report renders them as Markdown, the cards too, the page as HTML; none builds its own rows.
Cells are raw values (figure() formats them), so a test can compare them with the ledger.
"""

from __future__ import annotations

import math

Table = tuple[list[str], list[list]]
PRE_TRAINING_STAGES = ("ingest", "dedup", "scrub")


def figure(value: object, digits: int = 3) -> str:
    """A figure as people read it: floats to ``digits`` significant digits, None as n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def stage_total(evidence: dict, stage: str, column: str) -> int | None:
    """A stage's count summed over sources; None when the stage never ran."""
    rows = [r[column] for r in evidence["stage_counts"] if r["stage"] == stage]
    return sum(rows) if rows else None


def sources(evidence: dict) -> Table:
    ingest = {r["source_id"]: r for r in evidence["stage_counts"] if r["stage"] == "ingest"}
    rows = [
        [s["source_id"], s["license"], s["consent"], s["owner"],
         ingest.get(s["source_id"], {}).get("records_in"),
         ingest.get(s["source_id"], {}).get("records_out")]
        for s in evidence["sources"]
    ]  # fmt: skip
    return ["source", "license (SPDX)", "consent", "owner", "items read", "kept by ingest"], rows


def trained_sources(evidence: dict) -> list[dict]:
    """The sources the model was trained on, with their declared facts and record counts."""
    declared = {s["source_id"]: s for s in evidence["sources"]}
    return [declared.get(s["source_id"], {}) | s for s in evidence["training_sources"]]


def training_sources(evidence: dict) -> Table:
    rows = [
        [s["source_id"], s.get("license"), s.get("consent"), s.get("owner"),
         s.get("retrieved_at"), s["records"]]
        for s in trained_sources(evidence)
    ]  # fmt: skip
    header = ["source", "license (SPDX)", "consent", "owner", "retrieved", "training records"]
    return header, rows


def stages(evidence: dict) -> Table:
    rows = [
        [stage]
        + [stage_total(evidence, stage, c) for c in ("records_in", "records_out", "dropped")]
        for stage in PRE_TRAINING_STAGES
        if stage_total(evidence, stage, "records_in") is not None
    ]
    return ["stage", "records in", "records out", "dropped"], rows


def drops(evidence: dict) -> Table:
    rows = [[d["stage"], d["reason"], d["records"]] for d in evidence["drops"]]
    return ["stage", "reason", "records dropped"], rows


def pii(evidence: dict) -> Table:
    rows = [[p["entity_type"], p["entities"], p["records"]] for p in evidence["pii"]]
    return ["entity type", "entities masked", "records holding it"], rows


def detector(evidence: dict) -> Table:
    rows = [
        [held_out_name(e["eval_set"]), e["entity_type"], e["support"], e["recall"], e["precision"]]
        for e in evidence["pii_detector"]["entities"]
    ]
    return ["held-out set", "entity type", "support", "recall", "precision"], rows


def held_out_name(eval_set: str | None) -> str:
    """bench/pii.py names a set `held-out:<name>:<locales>:...`; the name is what a reader needs."""
    parts = (eval_set or "").split(":")
    return parts[1] if len(parts) > 1 and parts[0] == "held-out" else (eval_set or "")


def incidents(evidence: dict) -> Table:
    rows = [
        [i["list_name"], i["list_version"], i["kind"], i["incidents"]]
        for i in evidence["incidents"]["by_list"]
    ]
    return ["hash list", "version", "kind", "incidents"], rows


def evaluations(evidence: dict) -> Table:
    keys = ("model_kind", "epsilon", "mia_auc", "mia_tpr_at_1pct_fpr", "canary_exposure_max",
            "canary_exposure_bound", "attr_advantage", "heldout_loss")  # fmt: skip
    header = ["model", "ε", "MIA AUC", "MIA TPR @1% FPR", "canary exposure max (bits)",
              "exposure bound (bits)", "attribute advantage", "held-out loss"]  # fmt: skip
    return header, [[e[k] for k in keys] for e in evidence["evaluations"]]


def privacy_spent(evidence: dict) -> Table:
    keys = ("run_id", "epsilon_committed", "epsilon_cumulative", "epsilon_budget")
    rows = [[s[k] for k in keys] for s in evidence["privacy_spent"]]
    return ["training run", "ε committed", "ε cumulative", "ε budget"], rows


def releases(evidence: dict) -> Table:
    keys = ("release_id", "status", "training_run_id", "decided_at", "revoked")
    rows = [[r[k] for k in keys] for r in evidence["releases"]]
    return ["release", "status", "training run", "decided", "revoked"], rows


def revocations(evidence: dict) -> Table:
    rows = [[r["release_id"], r["reason"], r["revoked_at"]] for r in evidence["revocations"]]
    return ["release", "reason", "revoked at"], rows


def gate(evidence: dict) -> Table:
    rows = [
        [r["rule"], r["status"], r["value"], r["limit"], "; ".join(r["reasons"])]
        for r in evidence["gate"]["rules"]
    ]
    return ["rule", "result", "measured", "limit", "why"], rows


def training(evidence: dict) -> Table:
    return ["setting", "value"], [[k, v] for k, v in (evidence["training"] or {}).items()]


def markdown(table: Table) -> list[str]:
    """A table as Markdown lines; cells are figures, pipes escaped."""
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(figure(c).replace("|", "\\|") for c in row) + " |")
    return lines
