"""The one place that wires assay's assets, checks, jobs, schedules and sensors together."""

from pathlib import Path

import dagster as dg

from assets.dedup import dedup
from assets.ingest import build_ingest_asset
from assets.scrub import scrub
from pipelines import jobs
from pipelines.params import load_params
from pipelines.resource import AssayResource, default_params_path
from sensors.source_change import build_source_sensor


def build_defs(params_path: str | Path) -> dg.Definitions:
    params_path = str(Path(params_path).resolve())
    params = load_params(params_path)
    ingest = build_ingest_asset(params.source_ids)
    ingest_job = jobs.ingest_job(ingest.partitions_def)
    assets = [ingest, dedup, scrub]
    downstream_jobs = [jobs.curate_job()] if len(assets) > 1 else []
    return dg.Definitions(
        assets=assets,
        jobs=[ingest_job, *downstream_jobs],
        schedules=[jobs.nightly_full_run(ingest_job, params.source_ids)],
        sensors=[build_source_sensor(ingest_job, params_path)],
        resources={"assay": AssayResource(params_path=params_path)},
    )


defs = build_defs(default_params_path())
