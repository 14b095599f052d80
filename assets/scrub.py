"""scrub: PII replaced or the record dropped; guarded by conservation and a residual re-scan."""

import dagster as dg

from assets.checks import conservation
from assets.execution import AFTER_UPSTREAM, LEDGER_POOL
from pipelines.resource import AssayResource
from resources.scrub import STAGE, UPSTREAM, rescan, scrub_stage, upstream_sources

CHECKS = [
    dg.AssetCheckSpec("conservation", asset=STAGE, blocking=True),
    dg.AssetCheckSpec(
        "pii_residual",
        asset=STAGE,
        blocking=True,
        description="A more sensitive re-scan of the output finds at most pii.max_residual_per_10k",
    ),
]


@dg.asset(
    name=STAGE,
    deps=[UPSTREAM],
    code_version="scrub-1",
    pool=LEDGER_POOL,
    automation_condition=AFTER_UPSTREAM,
    check_specs=CHECKS,
    kinds={"parquet", "duckdb"},
    group_name="curation",
)
def scrub(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
    """Replace PII in every text record (operators from params.pii); drop records over the limit.

    Reads data/ingest/*.parquet (data/dedup/ once dedup lands), writes
    data/scrub/<source>.parquet, and records counts per source, entity type and record in the
    ledger (pii_counts, pii_record_counts), never a value.
    """
    params, ledger = assay.params(), assay.ledger()
    run_id = assay.record_run(context)
    config = params.pii
    outcome = scrub_stage(params.data_dir, params.source_ids, config, ledger, run_id)
    sources = upstream_sources(params.data_dir, params.source_ids)

    found = rescan(params.data_dir, sources, config)
    ledger.append_many([("pii_residuals", found.rows)], run_id)  # may be empty
    limit = config.max_residual_per_10k
    residual_check = dg.AssetCheckResult(
        check_name="pii_residual",
        passed=found.per_10k <= limit,
        description=f"sensitive re-scan (threshold {config.sensitive_threshold}) of the output",
        metadata={
            "residual_per_10k_docs": found.per_10k,
            "limit_per_10k_docs": limit,
            "docs": found.docs,
            "residual_by_type": dg.MetadataValue.json(found.found),
        },
    )
    kept_all = conservation(ledger, STAGE, run_id, str(params.data_dir), outcome.counted)
    checks = [kept_all, residual_check]
    mb = outcome.text_bytes / 1e6
    return dg.MaterializeResult(
        metadata={
            "records_in": outcome.records_in,
            "records_out": outcome.kept,
            "dropped_pii_over_limit": outcome.dropped,
            "entities_by_type": dg.MetadataValue.json(outcome.entities),
            "text_docs": outcome.text_docs,
            "docs_per_s": (outcome.text_docs / outcome.seconds) if outcome.seconds else 0.0,
            "mb_per_s": (mb / outcome.seconds) if outcome.seconds else 0.0,
            "residual_per_10k_docs": found.per_10k,
            "sources": dg.MetadataValue.json(outcome.artifacts),
        },
        data_version=dg.DataVersion(_combined(outcome.artifacts)),
        check_results=checks,
    )


def _combined(artifacts: dict[str, str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for source_id, sha in sorted(artifacts.items()):
        digest.update(f"{source_id}:{sha}\n".encode())
    return digest.hexdigest()
