"""The transparency report: aggregated figures only (counts, codes, rates), as JSON and Markdown.

It says what came in, what left and why, the PII found per type, the incidents by list and
kind, the purges and revocations, and the privacy spent. It never holds a record's content, a
PII value or a source key: it is built from resources/evidence/facts.py's figures alone.
"""

from __future__ import annotations

from resources.evidence import tables
from resources.evidence.tables import PRE_TRAINING_STAGES, figure, stage_total


def totals(evidence: dict) -> dict:
    """The headline figures: records in, out of each stage, dropped, trained on."""
    ran = [s for s in PRE_TRAINING_STAGES if stage_total(evidence, s, "records_out") is not None]
    training = evidence["training"] or {}
    return {
        "records_in": stage_total(evidence, "ingest", "records_in"),
        "records_out": {s: stage_total(evidence, s, "records_out") for s in PRE_TRAINING_STAGES},
        "sanitized_records": stage_total(evidence, ran[-1], "records_out") if ran else None,
        "records_dropped": sum(d["records"] for d in evidence["drops"]),
        "pii_entities": sum(p["entities"] for p in evidence["pii"]),
        "incidents": evidence["incidents"]["total"],
        "purged_artifacts": evidence["purges"]["artifacts"],
        "revocations": len(evidence["revocations"]),
        "training_records": training.get("train_records"),
        "heldout_records": training.get("heldout_records"),
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


def markdown(evidence: dict) -> str:
    """The report as Markdown, one section per question."""
    head = evidence["ledger_head"]
    out = [
        f"# {title(evidence)}",
        "",
        f"Aggregates from the provenance ledger up to entry {head['seq']}"
        f" (chain hash `{head['entry_hash']}`). No content, no PII values, no source keys.",
    ]
    for heading, lines in (
        ("What came in", came_in_lines(evidence)),
        ("What left, and why", left_lines(evidence)),
        ("PII found, per type", pii_lines(evidence)),
        ("Incidents (known-harmful hash matches)", incident_lines(evidence)),
        ("Purges and revocations", purge_lines(evidence)),
        ("Privacy spent", privacy_lines(evidence)),
        ("The release gate", gate_lines(evidence)),
    ):
        out += ["", f"## {heading}", "", *lines]
    return "\n".join(out) + "\n"


def came_in_lines(evidence: dict) -> list[str]:
    read = figure(totals(evidence)["records_in"])
    lead = f"{read} items were read from {len(evidence['sources'])} sources."
    return [lead, "", *tables.markdown(tables.sources(evidence))]


def left_lines(evidence: dict) -> list[str]:
    dropped = figure(totals(evidence)["records_dropped"])
    return [
        *tables.markdown(tables.stages(evidence)),
        "",
        f"{dropped} records were dropped, each with a reason:",
        "",
        *tables.markdown(tables.drops(evidence)),
    ]


def pii_lines(evidence: dict) -> list[str]:
    return [
        *tables.markdown(tables.pii(evidence)),
        "",
        residual_line(evidence),
        "",
        *detector_lines(evidence),
    ]


def residual_line(evidence: dict) -> str:
    residual = evidence["pii_residual"] or {}
    if not residual.get("measured"):
        return "The scrubbed corpus was not re-scanned for PII."
    where = f" (source {residual['source_id']})" if residual.get("source_id") else ""
    per_10k = figure(residual["max_per_10k"])
    return (
        f"Re-scan of the scrubbed corpus: at most {per_10k} entities per 10k documents{where}"
        + (
            f", an upper bound at {figure(residual['confidence'])} confidence from a sample of it."
            if residual.get("sampled")
            else "."
        )
    )


def detector_lines(evidence: dict) -> list[str]:
    """The PII detector's measured recall per entity, always with its caveats."""
    detector = evidence["pii_detector"]
    caveats = [f"- {c}" for c in detector["caveats"]]
    if not detector["measured"]:
        return ["PII detector recall: not measured in this ledger.", "", *caveats]
    lead = (
        f"PII detector recall, measured by {detector['detector']} on `{detector['eval_set']}`"
        f" (run {detector['run_id']}):"
    )
    return [lead, "", *tables.markdown(tables.detector(evidence)), "", "Caveats:", "", *caveats]


def incident_lines(evidence: dict) -> list[str]:
    lead = f"{figure(totals(evidence)['incidents'])} incidents in all."
    return [lead, "", *tables.markdown(tables.incidents(evidence))]


def purge_lines(evidence: dict) -> list[str]:
    purges = evidence["purges"]
    lines = [
        f"{figure(purges['artifacts'])} artifacts were rewritten without matched records"
        f" ({figure(purges['rows_removed'])} rows removed);"
        f" {figure(purges['tainted_training_runs'])} training runs were tainted;"
        f" {figure(totals(evidence)['revocations'])} releases were revoked."
    ]
    if evidence["revocations"]:
        lines += ["", *tables.markdown(tables.revocations(evidence))]
    return lines


def privacy_lines(evidence: dict) -> list[str]:
    run = evidence["training"]
    if not run:
        return ["No training run is in the ledger."]
    lead = (
        f"Training run {run['run_id']}: DP-SGD, ε = {figure(run['epsilon'])},"
        f" δ = {figure(run['delta'])} ({run['accountant']} accountant; noise multiplier"
        f" {figure(run['noise_multiplier'])}, sampling rate {figure(run['sample_rate'])},"
        f" {figure(run['steps'])} steps, clipping norm {figure(run['max_grad_norm'])},"
        f" privacy unit {run['privacy_unit']}) on {figure(run['train_records'])} records."
        f" Cumulative ε on this training set: {figure(evidence['epsilon_cumulative'])}."
    )
    lines = [lead, "", *tables.markdown(tables.evaluations(evidence))]
    if evidence["privacy_spent"]:
        lines += ["", *tables.markdown(tables.privacy_spent(evidence))]
    return lines


def gate_lines(evidence: dict) -> list[str]:
    status = evidence["gate"]["status"]
    lead = (
        f"Verdict: {status}."
        if evidence["scope"] == "release"
        else f"The gate as it would decide on the ledger now: {status}."
    )
    return [lead, "", *tables.markdown(tables.gate(evidence))]
