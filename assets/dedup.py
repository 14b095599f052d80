"""dedup: exact and near-duplicate removal across all sources, incremental over runs."""

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from assets.metadata import listing, table
from pipelines.params import Params
from resources.dedup.stage import CODE_VERSION, STAGE, UPSTREAM, DedupOutcome, run

NO_KEPT_DUPLICATES = dg.AssetCheckSpec(
    "no_kept_duplicates",
    asset=STAGE,
    blocking=True,
    description=(
        "The share of kept records with a kept duplicate is below dedup.residual_tolerance"
        " (upper confidence bound from a sample); pairs found are removed"
    ),
)


def build_dedup_asset(params: Params) -> dg.AssetsDefinition:
    @stage_asset(
        params,
        name=STAGE,
        upstream=UPSTREAM,
        code_version=CODE_VERSION,
        checks=[NO_KEPT_DUPLICATES],
    )
    def dedup(stage: StageRun) -> StageResult:
        """Remove exact and near duplicates across every source, keeping the best-provenance copy.

        Exact: same normalized text or same decoded pixels. Near: MinHash LSH verified by
        Jaccard (texts), pHash within a Hamming distance (images). Each drop's evidence names
        the record it duplicates. Sources unchanged since the last run keep their accepted
        records; new or changed ones are deduplicated against them (data/dedup/_signatures/).
        """
        config = stage.params.dedup
        outcome = run(
            config, stage.ledger, stage.run_id, stage.params.corpus(), stage.params.engine
        )
        return StageResult(
            metadata=_metadata(outcome),
            data_version=outcome.data_version,
            row_count=outcome.result.accepted.height,
            counted_sources=outcome.plan.process,
            checks=[_no_kept_duplicates(outcome, config.check_sample)],
        )

    return dedup


def _no_kept_duplicates(outcome: DedupOutcome, sample: int) -> dg.AssetCheckResult:
    """Blocks when the residual duplicate rate's upper bound is above the tolerance; an
    exhaustive audit (every kept record checked) blocks on any pair it could not remove."""
    config, estimate = outcome.config, outcome.estimate
    if estimate.exhaustive:
        passed = outcome.unresolved == 0
        rule = "every kept record was checked; no verified pair may remain"
    else:
        passed = estimate.upper_bound <= config.residual_tolerance
        rule = (
            f"residual rate <= {config.residual_tolerance} at {config.check_confidence:.0%}"
            " confidence (one-sided Clopper-Pearson)"
        )
    return dg.AssetCheckResult(
        check_name="no_kept_duplicates",
        passed=passed,
        description=(
            f"kept records within the threshold (Jaccard >= {config.threshold}, pHash"
            f" distance <= {config.image_max_distance}) of another kept one: {rule}"
        ),
        metadata={
            "sampled": estimate.sampled,
            "kept": estimate.kept,
            "sampled_with_duplicate": estimate.with_duplicate,
            "residual_rate": estimate.rate,
            "residual_rate_upper_bound": estimate.upper_bound,
            "residual_tolerance": config.residual_tolerance,
            "exhaustive": estimate.exhaustive,
            "removed_by_audit": outcome.removed_by_audit,
            "unresolved_pairs": outcome.unresolved,
            "examples": table(
                list(outcome.violations.columns), outcome.violations.head(10).iter_rows()
            ),
        },
    )


def _metadata(outcome: DedupOutcome) -> dict:
    plan, result = outcome.plan, outcome.result
    removed = outcome.removed_per_source
    reasons = sorted({reason for by_reason in removed.values() for reason in by_reason})
    return {
        "mode": outcome.mode,
        "sources_processed": listing(plan.process),
        "sources_carried": listing(plan.carried),
        "records_in": outcome.records_in,
        "records_out": result.kept.height,
        "dropped": result.drops.height,
        "removed_per_source": table(
            ["source", *reasons],
            [
                [source, *(by_reason.get(r, 0) for r in reasons)]
                for source, by_reason in removed.items()
            ],
        ),
        "clusters": result.clusters,
        "cluster_size_histogram": table(
            ["records in cluster", "clusters"], sorted(result.cluster_sizes.items())
        ),
        "lsh_bands_x_rows": f"{result.bands} x {result.rows}",
        "lsh_recall_at_threshold": outcome.recall_at_threshold,
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        "accepted_total": result.accepted.height,
    }
