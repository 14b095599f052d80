"""OpenLineage around every stage body: START before it, COMPLETE or FAIL after it.

The events are built by resources/core/lineage.py; this module says what a Dagster stage run
reads and writes: its upstream stage's last files (ingest: its source's own files) and the
artifacts it recorded in the ledger in this run.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.params import Params
from resources.core.ledger import Ledger
from resources.core.lineage import (
    FileDataset,
    LineageEmitter,
    StageJob,
    artifact_datasets,
    source_dataset,
)


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
    return [source_dataset(params.resolve(source.path), partition, owners, counted)]


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
    owners = {s.id: s.owner for s in params.sources}
    emitter.complete(job, read(), artifact_datasets(ledger, job.name, owners, job.dagster_run_id))
