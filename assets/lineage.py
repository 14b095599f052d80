"""OpenLineage around every stage body: START before it, COMPLETE or FAIL after it.

The events are built by resources/core/lineage.py; this module says what a Dagster stage run
reads and writes: its upstream stage's last files (ingest: its source's own files; rescreen:
the hash lists and the hash cache), the artifacts it recorded in the ledger in this run, the
release folder it wrote (release) and the files it purged (rescreen).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.jobs import RESCREEN
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
    params: Params,
    ledger: Ledger,
    stage: str,
    upstream: str | None,
    partition: str | None,
    run_id: str,
) -> list[FileDataset]:
    """What a stage reads: its upstream's last files, the partition's source files, or
    (rescreen) the hash lists and the hash cache."""
    owners = {s.id: s.owner for s in params.sources}
    if upstream:
        return artifact_datasets(ledger, upstream, owners)
    if stage == RESCREEN:
        screen = params.screen
        paths = [params.resolve(screen.hashlists_dir), params.resolve(screen.hash_cache)]
        return [path_dataset(p, None, owners) for p in paths if p.exists()]
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
    if stage == RESCREEN:
        return produced + purged_datasets(ledger, owners, run_id)
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


def purged_datasets(ledger: Ledger, owners: dict[str, str], run_id: str) -> list[FileDataset]:
    """The files rescreen rewrote without what a list now names, as they are after it."""
    purged = ledger.query(
        "SELECT DISTINCT path FROM purges WHERE run_id = ? ORDER BY path", [run_id]
    )["path"].to_list()
    datasets = []
    for path in map(Path, purged):
        if not path.is_file():
            continue
        rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
        source_id = path.stem if path.stem in owners else None
        datasets.append(path_dataset(path, source_id, owners, rows))
    return datasets


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
        return stage_inputs(params, ledger, job.name, upstream, partition, job.dagster_run_id)

    emitter.start(job, read())
    try:
        yield
    except BaseException as err:
        emitter.fail(job, read(), err)
        raise
    emitter.complete(job, read(), stage_outputs(params, ledger, job.name, job.dagster_run_id))
