"""The one place that wires assay's assets, checks, jobs, schedules and sensors together."""

from pathlib import Path

import dagster as dg

from assets.dedup import build_dedup_asset
from assets.ingest import build_ingest_asset
from assets.release import build_release_asset
from assets.rescreen import build_rescreen_asset
from assets.scrub import build_scrub_asset
from assets.train import build_train_asset
from pipelines import jobs
from pipelines.params import load_params
from pipelines.resource import AssayResource, default_params_path
from sensors.hashlist_change import build_hashlist_sensor
from sensors.source_change import build_source_sensor


def build_defs(params_path: str | Path) -> dg.Definitions:
    params_path = str(Path(params_path).resolve())
    params = load_params(params_path)
    ingest = build_ingest_asset(params)
    ingest_job = jobs.ingest_job(ingest.partitions_def)
    rescreen = jobs.rescreen_job()
    return dg.Definitions(
        assets=[
            ingest,
            build_dedup_asset(params),
            build_scrub_asset(params),
            build_train_asset(params),
            build_release_asset(params),
            build_rescreen_asset(params),
        ],
        jobs=[ingest_job, jobs.curate_job(), rescreen],
        schedules=[
            jobs.nightly_full_run(ingest_job, params.source_ids),
            jobs.nightly_rescreen(rescreen),
        ],
        sensors=[
            # Dagster's own automation sensor starts stopped; eager stages need it running.
            dg.AutomationConditionSensorDefinition(
                "assay_automation",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
            ),
            build_source_sensor(ingest_job, params_path),
            build_hashlist_sensor(rescreen, params_path),
        ],
        resources={"assay": AssayResource(params_path=params_path)},
    )


defs = build_defs(default_params_path())
