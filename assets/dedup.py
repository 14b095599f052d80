"""dedup: exact and near-duplicate removal across all sources, incremental over runs."""

import dagster as dg

from assets.checks import conservation
from assets.execution import AFTER_UPSTREAM, LEDGER_POOL
from pipelines.resource import AssayResource
from resources.dedup_stage import CODE_VERSION, STAGE, UPSTREAM, DedupOutcome, dedup_stage

CHECKS = [
    dg.AssetCheckSpec("conservation", asset=STAGE, blocking=True),
    dg.AssetCheckSpec("no_kept_duplicates", asset=STAGE, blocking=True),
]


@dg.asset(
    name=STAGE,
    deps=[UPSTREAM],
    code_version=CODE_VERSION,
    pool=LEDGER_POOL,
    automation_condition=AFTER_UPSTREAM,
    check_specs=CHECKS,
    kinds={"parquet", "duckdb"},
    group_name="curation",
)
def dedup(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
    """Remove exact and near duplicates across every source, keeping the best-provenance copy.

    Exact: same normalized text or same decoded pixels. Near: MinHash LSH verified by Jaccard
    (texts), pHash within a Hamming distance (images). Each drop's evidence names the record
    it duplicates. Sources unchanged since the last run keep their accepted records; new or
    changed ones are deduplicated against them (data/dedup/_signatures/).
    """
    params, ledger = assay.params(), assay.ledger()
    run_id = assay.record_run(context)
    outcome = dedup_stage(params, ledger, run_id)
    checks = [
        conservation(ledger, STAGE, run_id, str(params.data_dir), outcome.plan.process),
        _no_kept_duplicates(outcome, params.dedup.check_sample),
    ]
    return dg.MaterializeResult(
        metadata=_metadata(outcome),
        data_version=dg.DataVersion(outcome.data_version),
        check_results=checks,
    )


def _no_kept_duplicates(outcome: DedupOutcome, sample: int) -> dg.AssetCheckResult:
    config, violations = outcome.config, outcome.violations
    return dg.AssetCheckResult(
        check_name="no_kept_duplicates",
        passed=violations.is_empty(),
        description=(
            f"no kept record is within the threshold (Jaccard >= {config.threshold}, pHash"
            f" distance <= {config.image_max_distance}) of another, on a sample of {sample}"
        ),
        metadata={
            "sampled": min(sample, outcome.audited),
            "kept": outcome.audited,
            "violations": violations.height,
            "examples": dg.MetadataValue.json(violations.head(10).to_dicts()),
        },
    )


def _metadata(outcome: DedupOutcome) -> dict:
    plan, result = outcome.plan, outcome.result
    histogram = "\n".join(
        ["| records in cluster | clusters |", "|---:|---:|"]
        + [f"| {size} | {count} |" for size, count in sorted(result.cluster_sizes.items())]
    )
    return {
        "mode": outcome.mode,
        "sources_processed": dg.MetadataValue.json(plan.process),
        "sources_carried": dg.MetadataValue.json(plan.carried),
        "records_in": outcome.records_in,
        "records_out": result.kept.height,
        "dropped": result.drops.height,
        "removed_per_source": dg.MetadataValue.json(outcome.removed_per_source),
        "clusters": result.clusters,
        "cluster_sizes": dg.MetadataValue.json(
            {str(k): v for k, v in result.cluster_sizes.items()}
        ),
        "cluster_size_histogram": dg.MetadataValue.md(histogram),
        "lsh_bands_x_rows": f"{result.bands} x {result.rows}",
        "lsh_recall_at_threshold": round(outcome.recall_at_threshold, 4),
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        "accepted_total": result.accepted.height,
    }
