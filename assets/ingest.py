"""ingest: one partition per source; reads it into records, screens them at the door, drops what
cannot go on."""

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from assets.metadata import counts
from pipelines.params import Params
from resources.core.storage import data_version
from resources.ingest.stage import STAGE, run
from resources.screen.door import listed_in_output

NO_LISTED_CONTENT = dg.AssetCheckSpec(
    "no_listed_content",
    asset=STAGE,
    blocking=True,
    description="No record ingest wrote matches a hash list on disk, and every one was hashed",
)


def no_listed_content(params: Params, source_id: str) -> dg.AssetCheckResult:
    """Reads back what ingest wrote and matches it against the lists as they are now."""
    matches, unhashable = listed_in_output(
        params.screen, params.corpus(), STAGE, [source_id], params.engine
    )
    return dg.AssetCheckResult(
        check_name="no_listed_content",
        passed=matches.is_empty() and unhashable == 0,
        description="nothing in data/ingest matches a hash list; every record was hashed",
        metadata={"matches": matches.height, "unhashable": unhashable},
    )


def build_ingest_asset(params: Params) -> dg.AssetsDefinition:
    """The ingest asset, partitioned by the source ids that params.yaml declares."""

    @stage_asset(
        params,
        name=STAGE,
        upstream=None,
        code_version="ingest-2",
        checks=[NO_LISTED_CONTENT],
        partitions_def=dg.StaticPartitionsDefinition(params.source_ids),
    )
    def ingest(stage: StageRun) -> StageResult:
        """Read one source's files in bounded batches, screen every item against every hash
        list, and write what passes to data/ingest/<source>.parquet.

        Every item read becomes a record or a drop with a reason (malformed, encoding,
        unreadable, too_large, empty, outside_root, license_disallowed, no_consent,
        harmful_hash_match, content_changed). A match is quarantined (hashes, location, list
        entry; never bytes) and reported as an incident per occurrence.
        """
        source_id = stage.context.partition_key
        params = stage.params
        outcome = run(
            params.ingest,
            stage.ledger,
            stage.run_id,
            params.corpus(),
            source_id,
            params.screen,
            params.engine,
        )
        return StageResult(
            metadata={
                "owner": params.source(source_id).owner,
                "records_in": outcome.read,
                "records_out": outcome.kept,
                "dropped": sum(outcome.dropped.values()),
                "dropped_by_reason": counts(outcome.dropped, "reason", "records"),
                "files": outcome.files,
                "quarantined": outcome.quarantined,
                "new_incidents": outcome.incidents,
                "moved_to_quarantine": outcome.moved,
                "source_content_sha256": outcome.content_sha256,
                "path": dg.MetadataValue.path(str(outcome.artifact.path)),
                "sha256": outcome.artifact.sha256,
            },
            data_version=data_version({source_id: outcome.artifact.sha256}),
            row_count=outcome.kept,
            counted_sources=[source_id],
            checks=[no_listed_content(params, source_id)],
        )

    return ingest
