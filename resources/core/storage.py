"""Files assay writes: atomically, with their digests, as the ledger's artifacts table records them.

Stage outputs are one Parquet file per stage and source, under data/<stage>/<source_id>.parquet.
Every file assay writes goes through ``atomic_path`` (a temporary file renamed into place), so
a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from resources.core.records import RECORD_SCHEMA, empty_records


@dataclass(frozen=True)
class Artifact:
    """A file a stage produced, as the ledger's artifacts table records it."""

    path: Path
    sha256: str
    size_bytes: int
    stage: str | None = None
    source_id: str | None = None
    records: int | None = None

    def row(self) -> dict:
        """The artifacts table's row for this file."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "stage": self.stage,
            "source_id": self.source_id,
            "records": self.records,
        }


def stage_path(data_dir: str | Path, stage: str, source_id: str) -> Path:
    return Path(data_dir) / stage / f"{source_id}.parquet"


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 hex of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def json_sha256(value: object) -> str:
    """sha256 hex of a value's canonical JSON: the one digest of structured data."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def artifact(
    path: str | Path,
    stage: str | None = None,
    source_id: str | None = None,
    records: int | None = None,
) -> Artifact:
    path = Path(path)
    return Artifact(path, file_sha256(path), path.stat().st_size, stage, source_id, records)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds.

    The parent folder is created; on an exception the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(df: pl.DataFrame, path: str | Path, **options: object) -> Path:
    """Write a frame to Parquet atomically."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, **options)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_stage(df: pl.DataFrame, data_dir: str | Path, stage: str, source_id: str) -> Artifact:
    """Write one source's records for a stage atomically; returns the artifact."""
    path = stage_path(data_dir, stage, source_id)
    records = df.select(list(RECORD_SCHEMA)).cast(RECORD_SCHEMA)
    write_parquet(records, path, statistics=False)
    return artifact(path, stage, source_id, records.height)


@contextmanager
def parquet_sink(path: str | Path) -> Iterator[Callable[[pl.DataFrame], None]]:
    """A writer appending record batches to one Parquet file, renamed into place when done."""
    with atomic_path(path) as tmp, parquet_writer(tmp) as write:
        yield write


@contextmanager
def parquet_writer(path: str | Path) -> Iterator[Callable[[pl.DataFrame], None]]:
    """A writer appending record batches (RECORD_SCHEMA) to the Parquet file at path, one row
    group per batch; the file is complete when the block ends."""
    schema = empty_records().to_arrow().schema
    with pq.ParquetWriter(path, schema) as writer:

        def write(records: pl.DataFrame) -> None:
            if records.height:
                writer.write_table(records.select(list(RECORD_SCHEMA)).to_arrow().cast(schema))

        yield write


def read_parts(
    path: str | Path, rows: int, columns: list[str] | None = None
) -> Iterator[pl.DataFrame]:
    """A stage file's records, at most ``rows`` at a time, in file order: memory stays flat."""
    wanted = columns or list(RECORD_SCHEMA)
    schema = {name: RECORD_SCHEMA[name] for name in wanted}
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=rows, columns=wanted):
            yield pl.DataFrame(pl.from_arrow(batch)).cast(schema)


def read_stage(
    data_dir: str | Path, stage: str, source_ids: list[str] | None = None
) -> pl.DataFrame:
    """All records a stage wrote (optionally only some sources), in source then file order."""
    folder = Path(data_dir) / stage
    if source_ids is None:
        paths = sorted(folder.glob("*.parquet"))
    else:
        paths = [stage_path(data_dir, stage, s) for s in sorted(source_ids)]
        paths = [p for p in paths if p.exists()]
    if not paths:
        return empty_records()
    return pl.concat([pl.read_parquet(p).cast(RECORD_SCHEMA) for p in paths])


def data_version(file_digests: Mapping[str, str | None]) -> str:
    """A Dagster data version: the digest of each output's sha256 (None where there is none)."""
    return json_sha256(dict(file_digests))


def stage_data_version(data_dir: str | Path, stage: str, source_ids: list[str]) -> str:
    """The data version of a stage's outputs for these sources, read from disk."""
    digests = {}
    for source_id in source_ids:
        path = stage_path(data_dir, stage, source_id)
        digests[source_id] = file_sha256(path) if path.exists() else None
    return data_version(digests)


def pairs_sha256(pairs: Iterable[tuple[str, str]]) -> str:
    """sha256 over the sorted (name, value) pairs, one ``name NUL value LF`` line each."""
    digest = hashlib.sha256()
    for name, value in sorted(pairs):
        digest.update(f"{name}\0{value}\n".encode())
    return digest.hexdigest()
