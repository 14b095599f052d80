"""ingest: one partition per source; reads it into records, drops what cannot go on."""

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from pipelines.params import Params
from resources.core.storage import data_version
from resources.ingest.stage import STAGE, run


def build_ingest_asset(params: Params) -> dg.AssetsDefinition:
    """The ingest asset, partitioned by the source ids that params.yaml declares."""

    @stage_asset(
        params,
        name=STAGE,
        upstream=None,
        code_version="ingest-1",
        partitions_def=dg.StaticPartitionsDefinition(params.source_ids),
    )
    def ingest(stage: StageRun) -> StageResult:
        """Read one source's files in bounded batches into data/ingest/<source>.parquet.

        Every item read becomes a record or a drop with a reason (malformed, encoding,
        unreadable, too_large, empty, outside_root, license_disallowed, no_consent).
        """
        source_id = stage.context.partition_key
        outcome = run(
            stage.params.ingest, stage.ledger, stage.run_id, stage.params.corpus(), source_id
        )
        return StageResult(
            metadata={
                "records_in": outcome.read,
                "records_out": outcome.kept,
                "dropped": dg.MetadataValue.json(outcome.dropped),
                "files": outcome.files,
                "source_content_sha256": outcome.content_sha256,
                "path": dg.MetadataValue.path(str(outcome.artifact.path)),
                "sha256": outcome.artifact.sha256,
            },
            data_version=data_version({source_id: outcome.artifact.sha256}),
            row_count=outcome.kept,
            counted_sources=[source_id],
        )

    return ingest
