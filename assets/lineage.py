"""OpenLineage around every stage body: START before it, COMPLETE or FAIL after it.

The events are built by resources/core/lineage.py; this module says what a Dagster stage run
reads and writes: its upstream stage's last files (ingest: its source's own files), the
artifacts it recorded in the ledger in this run, and the release folders it recorded.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.params import Params
from resources.core.ledger import Ledger
from resources.core.lineage import (
    FileDataset,
    LineageEmitter,
    StageJob,
    artifact_datasets,
    path_dataset,
)
from resources.release.stage import STAGE as RELEASE


def stage_inputs(
    params: Params, ledger: Ledger, upstream: str | None, partition: str | None, run_id: str
) -> list[FileDataset]:
    """What a stage reads: its upstream's last files, or the partition's source files."""
    owners = {s.id: s.owner for s in params.sources}
    if upstream:
        return artifact_datasets(ledger, upstream, owners)
    if partition is None or partition not in owners:
        return []
    source = params.source(partition)
    counted = ledger.query(
        "SELECT CAST(sum(records_in) AS BIGINT) AS n FROM stage_counts"
        " WHERE run_id = ? AND source_id = ?",
        [run_id, partition],
    ).item()
    return [path_dataset(params.resolve(source.path), partition, owners, counted)]


def stage_outputs(params: Params, ledger: Ledger, stage: str, run_id: str) -> list[FileDataset]:
    """The artifacts the stage recorded in this run, and (release) the release folder it wrote."""
    owners = {s.id: s.owner for s in params.sources}
    produced = artifact_datasets(ledger, stage, owners, run_id)
    if stage != RELEASE:
        return produced
    releases = ledger.query(
        "SELECT r.path, t.train_records FROM releases r"
        " LEFT JOIN training_runs t ON t.run_id = r.training_run_id"
        " WHERE r.run_id = ? AND r.path IS NOT NULL ORDER BY r.entry_seq",
        [run_id],
    ).to_dicts()
    folders = [
        path_dataset(Path(r["path"]), None, owners, r["train_records"])
        for r in releases
        if Path(r["path"]).is_dir()
    ]
    return produced + folders


@contextmanager
def emitted(
    params: Params,
    ledger: Ledger,
    job: StageJob,
    upstream: str | None,
    partition: str | None,
) -> Iterator[None]:
    """Emits the stage run's events (unless params.lineage.enabled is false) around its body."""
    if not params.lineage.enabled:
        yield
        return
    emitter = LineageEmitter(params.resolve(params.lineage.events))

    def read() -> list[FileDataset]:
        return stage_inputs(params, ledger, upstream, partition, job.dagster_run_id)

    emitter.start(job, read())
    try:
        yield
    except BaseException as err:
        emitter.fail(job, read(), err)
        raise
    emitter.complete(job, read(), stage_outputs(params, ledger, job.name, job.dagster_run_id))
