"""The transparency report: aggregated figures only (counts, codes, rates), as JSON and Markdown.

It says what came in, what left and why, the PII found per type, the incidents by list and
kind, the purges and revocations, and the privacy spent. It never holds a record's content, a
PII value or a source key: it is built from resources/evidence/facts.py's figures alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
    rows = [r[column] for r in evidence["stage_counts"] if r["stage"] == stage]
    return sum(rows) if rows else None


def totals(evidence: dict) -> dict:
    """The headline figures: records in, out of each stage, dropped, trained on."""
    ran = [s for s in PRE_TRAINING_STAGES if stage_total(evidence, s, "records_out") is not None]
    last = ran[-1] if ran else None
    training = evidence["training"] or {}
    return {
        "records_in": stage_total(evidence, "ingest", "records_in"),
        "records_out": {s: stage_total(evidence, s, "records_out") for s in PRE_TRAINING_STAGES},
        "sanitized_records": stage_total(evidence, last, "records_out") if last else None,
        "records_dropped": sum(d["records"] for d in evidence["drops"]),
        "pii_entities": sum(p["entities"] for p in evidence["pii"]),
        "incidents": evidence["incidents"]["total"],
        "purged_artifacts": evidence["purges"]["artifacts"],
        "revocations": len(evidence["revocations"]),
        "training_records": training.get("train_records"),
        "epsilon": training.get("epsilon"),
        "delta": training.get("delta"),
        "epsilon_cumulative": evidence["epsilon_cumulative"],
    }


def document(evidence: dict) -> dict:
    """The report as JSON: the headline totals and every aggregate they come from."""
    return {"report": "assay transparency report", "totals": totals(evidence), **evidence}


def title(evidence: dict) -> str:
    if evidence["scope"] == "release":
        release = evidence["release"]
        return f"Transparency report: release {release['release_id']} ({release['status']})"
    return f"Transparency report: the ledger as of entry {evidence['ledger_head']['seq']}"


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    """A Markdown table; cells are figures, pipes escaped."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [figure(c).replace("|", "\\|") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(evidence: dict) -> str:
    """The report as Markdown, one section per question."""
    t = totals(evidence)
    head = evidence["ledger_head"]
    out = [f"# {title(evidence)}", ""]
    out += [
        f"Aggregates from the provenance ledger up to entry {head['seq']}"
        f" (chain hash `{head['entry_hash']}`). No content, no PII values, no source keys.",
        "",
        "## What came in",
        "",
        f"{figure(t['records_in'])} items were read from {len(evidence['sources'])} sources.",
        "",
    ]
    ingest = {r["source_id"]: r for r in evidence["stage_counts"] if r["stage"] == "ingest"}
    out += table(
        ["source", "license (SPDX)", "consent", "owner", "items read", "kept by ingest"],
        (
            [
                s["source_id"],
                s["license"],
                s["consent"],
                s["owner"],
                ingest.get(s["source_id"], {}).get("records_in"),
                ingest.get(s["source_id"], {}).get("records_out"),
            ]
            for s in evidence["sources"]
        ),
    )
    out += ["", "## What left, and why", ""]
    out += table(
        ["stage", "records in", "records out", "dropped"],
        (
            [
                stage,
                stage_total(evidence, stage, "records_in"),
                t["records_out"][stage],
                stage_total(evidence, stage, "dropped"),
            ]
            for stage in PRE_TRAINING_STAGES
            if t["records_out"][stage] is not None
        ),
    )
    out += ["", f"{figure(t['records_dropped'])} records were dropped, each with a reason:", ""]
    out += table(
        ["stage", "reason", "records"],
        ([d["stage"], d["reason"], d["records"]] for d in evidence["drops"]),
    )
    out += ["", "## PII found, per type", ""]
    out += table(
        ["entity type", "entities", "records holding it"],
        ([p["entity_type"], p["entities"], p["records"]] for p in evidence["pii"]),
    )
    out += ["", *_residual_lines(evidence), "", *_detector_lines(evidence["pii_detector"])]
    out += ["", "## Incidents (known-harmful hash matches)", ""]
    out += [f"{figure(t['incidents'])} incidents in all.", ""]
    out += table(
        ["hash list", "version", "kind", "incidents"],
        (
            [i["list_name"], i["list_version"], i["kind"], i["incidents"]]
            for i in evidence["incidents"]["by_list"]
        ),
    )
    purges = evidence["purges"]
    out += [
        "",
        "## Purges and revocations",
        "",
        f"{figure(purges['artifacts'])} artifacts were rewritten without matched records"
        f" ({figure(purges['rows_removed'])} rows removed);"
        f" {figure(purges['tainted_training_runs'])} training runs were tainted;"
        f" {figure(t['revocations'])} releases were revoked.",
    ]
    if evidence["revocations"]:
        out += [
            "",
            *table(
                ["release", "reason", "revoked at"],
                ([r["release_id"], r["reason"], r["revoked_at"]] for r in evidence["revocations"]),
            ),
        ]
    out += ["", "## Privacy spent", "", *privacy_lines(evidence)]
    out += ["", "## The release gate", "", *gate_lines(evidence)]
    return "\n".join(out) + "\n"


def _residual_lines(evidence: dict) -> list[str]:
    residual = evidence["pii_residual"] or {}
    if not residual.get("measured"):
        return ["The scrubbed corpus was not re-scanned for PII."]
    return [
        "Re-scan of the scrubbed corpus: at most"
        f" {figure(residual['max_per_10k'])} entities per 10k documents left"
        + (f" (source {residual['source_id']})." if residual.get("source_id") else ".")
    ]


def _detector_lines(detector: dict) -> list[str]:
    if not detector["measured"]:
        return ["PII detector recall: not measured.", "", *(f"- {c}" for c in detector["caveats"])]
    lines = [
        f"PII detector recall, measured by {detector['detector']} on `{detector['eval_set']}`"
        f" (run {detector['run_id']}):",
        "",
        *table(
            ["entity type", "support", "recall", "precision"],
            (
                [e["entity_type"], e["support"], e["recall"], e["precision"]]
                for e in detector["entities"]
            ),
        ),
        "",
        "Caveats:",
        "",
    ]
    return lines + [f"- {c}" for c in detector["caveats"]]


def privacy_lines(evidence: dict) -> list[str]:
    training = evidence["training"]
    if not training:
        return ["No training run is in the ledger."]
    lines = [
        f"Training run {training['run_id']}: DP-SGD, ε = {figure(training['epsilon'])},"
        f" δ = {figure(training['delta'])} ({training['accountant']} accountant; noise multiplier"
        f" {figure(training['noise_multiplier'])}, sampling rate {figure(training['sample_rate'])},"
        f" {figure(training['steps'])} steps, clipping norm {figure(training['max_grad_norm'])},"
        f" privacy unit {training['privacy_unit']}) on {figure(training['train_records'])}"
        f" records. Cumulative ε on this training set: {figure(evidence['epsilon_cumulative'])}.",
        "",
    ]
    lines += table(
        [
            "model",
            "MIA AUC",
            "MIA TPR @1% FPR",
            "canary exposure max (bits)",
            "exposure bound (bits)",
            "attribute advantage",
            "held-out loss",
        ],
        (
            [
                e["model_kind"],
                e["mia_auc"],
                e["mia_tpr_at_1pct_fpr"],
                e["canary_exposure_max"],
                e["canary_exposure_bound"],
                e["attr_advantage"],
                e["heldout_loss"],
            ]
            for e in evidence["evaluations"]
        ),
    )
    spent = evidence["privacy_spent"]
    if spent:
        lines += [
            "",
            *table(
                ["training run", "ε committed", "ε cumulative", "ε budget"],
                (
                    [
                        s["run_id"],
                        s["epsilon_committed"],
                        s["epsilon_cumulative"],
                        s["epsilon_budget"],
                    ]
                    for s in spent
                ),
            ),
        ]
    return lines


def gate_lines(evidence: dict) -> list[str]:
    gate = evidence["gate"]
    lead = (
        f"Verdict: {gate['status']}."
        if evidence["scope"] == "release"
        else f"The gate as it would decide on the ledger now: {gate['status']}."
    )
    rows = (
        [r["rule"], r["status"], r["value"], r["limit"], "; ".join(r["reasons"])]
        for r in gate["rules"]
    )
    return [lead, "", *table(["rule", "result", "measured", "limit", "why"], rows)]
