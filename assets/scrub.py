"""scrub: PII replaced or the record dropped; guarded by conservation and a residual re-scan."""

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from assets.metadata import counts, table
from pipelines.params import Params
from resources.core.records import TEXT
from resources.scrub.stage import STAGE, UPSTREAM, run

PII_RESIDUAL = dg.AssetCheckSpec(
    "pii_residual",
    asset=STAGE,
    blocking=True,
    description=(
        "A more sensitive re-scan of the output finds at most pii.max_residual_per_10k entities"
        " per 10k texts in any source (the rate's upper bound where a source was sampled)"
    ),
)


def build_scrub_asset(params: Params) -> dg.AssetsDefinition:
    @stage_asset(
        params,
        name=STAGE,
        upstream=UPSTREAM,
        code_version="scrub-2",
        checks=[PII_RESIDUAL],
        masked_columns=frozenset({TEXT}),
    )
    def scrub(stage: StageRun) -> StageResult:
        """Replace PII in every text record (operators from params.pii); drop those over the limit.

        Reads data/dedup/<source>.parquet, writes data/scrub/<source>.parquet, and records
        counts per source, entity type and record in the ledger (pii_counts, pii_record_counts),
        never a value.
        """
        config = stage.params.pii
        outcome = run(
            config, stage.ledger, stage.run_id, stage.params.corpus(), stage.params.engine
        )
        found = outcome.residual
        worst = found.worst
        rate = worst.per_10k if worst else 0.0  # the worst source's, beside its bound
        residual_check = dg.AssetCheckResult(
            check_name="pii_residual",
            passed=found.per_10k_upper <= config.max_residual_per_10k,
            description=(
                f"sensitive re-scan (threshold {config.sensitive_threshold}) of the output; a"
                f" source of more than {config.residual_sample} texts is read on a sample"
            ),
            metadata={
                "residual_per_10k_docs": rate,
                "residual_per_10k_upper": found.per_10k_upper,
                "limit_per_10k_docs": config.max_residual_per_10k,
                "worst_source": worst.source_id if worst else "",
                "docs": found.docs,
                "docs_scanned": found.scanned,
                "residual_by_type": counts(found.found, "entity type", "found"),
            },
        )
        seconds, mb = outcome.seconds, outcome.text_bytes / 1e6
        return StageResult(
            metadata={
                "records_in": outcome.records_in,
                "records_out": outcome.kept,
                "dropped_pii_over_limit": outcome.dropped,
                "entities_by_type": counts(outcome.entities, "entity type", "replaced"),
                "text_docs": outcome.text_docs,
                "docs_per_s": outcome.text_docs / seconds if seconds else 0.0,
                "mb_per_s": mb / seconds if seconds else 0.0,
                "residual_per_10k_docs": rate,
                "residual_per_10k_upper": found.per_10k_upper,
                "sources": table(["source", "sha256"], sorted(outcome.artifacts.items())),
            },
            data_version=outcome.data_version,
            row_count=outcome.kept,
            counted_sources=outcome.counted,
            checks=[residual_check],
        )

    return scrub
