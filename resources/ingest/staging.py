"""Ledger rows staged on disk while a source is read, and appended only once it is read.

Reading a source can be slow or stall (a slow disk, a network mount); the ledger's write lock
must never be held meanwhile, or every reader of the ledger waits too. So ingest writes each
batch's ledger rows to a Parquet file per table, and appends them afterwards in bounded
batches through one writer: memory stays bounded and the lock is held only for the appends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from resources.core.ledger import Ledger


class StagedRows:
    """A context manager: add() frames per ledger table, append_to() the ledger, then clean up."""

    def __init__(self, directory: Path) -> None:
        self._parent = directory
        self._writers: dict[str, pq.ParquetWriter] = {}

    def __enter__(self) -> StagedRows:
        self._parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix=".ledger-staging-", dir=self._parent))
        return self

    def add(self, batches: Sequence[tuple[str, pl.DataFrame]]) -> None:
        for table, frame in batches:
            if not frame.height:
                continue
            rows = frame.to_arrow()
            writer = self._writers.get(table)
            if writer is None:
                writer = pq.ParquetWriter(self._dir / f"{table}.parquet", rows.schema)
                self._writers[table] = writer
            writer.write_table(rows.cast(writer.schema))

    def append_to(self, ledger: Ledger, run_id: str, batch_rows: int) -> None:
        """Append every staged row, ``batch_rows`` at a time, one chain entry per batch."""
        self._close()
        with ledger.writer() as writer:
            for table in self._writers:
                staged = pq.ParquetFile(self._dir / f"{table}.parquet")
                for batch in staged.iter_batches(batch_size=batch_rows):
                    writer.append(table, pa.Table.from_batches([batch]), run_id)

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def __exit__(self, *exc: object) -> None:
        self._close()
        shutil.rmtree(self._dir, ignore_errors=True)
