"""Jobs and schedules: ingest per source, then everything downstream in one run."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

INGEST = "ingest"
RESCREEN = "rescreen"


def ingest_job(partitions: dg.PartitionsDefinition) -> AssetJob:
    return dg.define_asset_job(
        "ingest_job", selection=dg.AssetSelection.assets(INGEST), partitions_def=partitions
    )


def curate_job() -> AssetJob:
    """Every stage after ingest, over all sources at once."""
    return dg.define_asset_job(
        "curate_job",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(INGEST, RESCREEN),
    )


def rescreen_job() -> AssetJob:
    """rescreen alone: what the hash-list sensor and the nightly schedule run. The stages its
    purge touched re-run by their automation."""
    return dg.define_asset_job("rescreen_job", selection=dg.AssetSelection.assets(RESCREEN))


def nightly_full_run(job: AssetJob, source_ids: list[str]) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="nightly_full_run",
        job=job,
        cron_schedule="0 3 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def nightly(context: dg.ScheduleEvaluationContext):
        """Re-ingests every source at 03:00 UTC; downstream stages follow automatically."""
        stamp = context.scheduled_execution_time.isoformat()
        for source_id in source_ids:
            yield dg.RunRequest(partition_key=source_id, run_key=f"{source_id}:{stamp}")

    return nightly


def nightly_rescreen(job: AssetJob) -> dg.ScheduleDefinition:
    """Re-screens every record ever ingested at 04:00 UTC, after the nightly ingest."""
    return dg.ScheduleDefinition(
        name="nightly_rescreen",
        job=job,
        cron_schedule="0 4 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
