"""ingest: one partition per source; reads it into records, drops what cannot go on."""

import dagster as dg

from assets.checks import conservation
from assets.execution import LEDGER_POOL
from pipelines.resource import AssayResource
from resources.ingest import STAGE, ingest_source
from resources.readers import ReadSpec
from resources.storage import stage_path

CHECKS = [dg.AssetCheckSpec("conservation", asset=STAGE, blocking=True)]


def build_ingest_asset(source_ids: list[str]) -> dg.AssetsDefinition:
    """The ingest asset, partitioned by the source ids that params.yaml declares."""

    @dg.asset(
        name=STAGE,
        partitions_def=dg.StaticPartitionsDefinition(source_ids),
        code_version="ingest-1",
        pool=LEDGER_POOL,
        check_specs=CHECKS,
        kinds={"parquet", "duckdb"},
        group_name="curation",
    )
    def ingest(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
        """Read one source's files in bounded batches into data/ingest/<source>.parquet.

        Every item read becomes a record or a drop with a reason (malformed, encoding,
        unreadable, too_large, empty, outside_root, license_disallowed, no_consent).
        """
        params, ledger = assay.params(), assay.ledger()
        source = params.source(context.partition_key)
        run_id = assay.record_run(context)
        spec = ReadSpec(
            source.text_field,
            source.id_field,
            params.ingest.max_record_bytes,
            params.ingest.batch_size,
        )
        out = stage_path(params.data_dir, STAGE, source.id)
        outcome = ingest_source(
            source, params.resolve(source.path), params.policy, spec, out, ledger, run_id
        )
        check = conservation(ledger, STAGE, run_id, str(params.data_dir), [source.id])
        return dg.MaterializeResult(
            metadata={
                "records_in": outcome.read,
                "records_out": outcome.kept,
                "dropped": dg.MetadataValue.json(outcome.dropped),
                "files": outcome.files,
                "source_content_sha256": outcome.content_sha256,
                "path": dg.MetadataValue.path(str(outcome.artifact.path)),
                "sha256": outcome.artifact.sha256,
            },
            data_version=dg.DataVersion(outcome.artifact.sha256),
            check_results=[check],
        )

    return ingest
