"""Stage outputs: one Parquet file per stage and source, under data/<stage>/<source_id>.parquet."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.records import RECORD_SCHEMA, empty_records


@dataclass(frozen=True)
class Artifact:
    """A file an asset produced, as the ledger's artifacts table records it."""

    path: Path
    sha256: str
    size_bytes: int


def stage_path(data_dir: str | Path, stage: str, source_id: str) -> Path:
    return Path(data_dir) / stage / f"{source_id}.parquet"


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 hex of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def artifact(path: str | Path) -> Artifact:
    path = Path(path)
    return Artifact(path, file_sha256(path), path.stat().st_size)


def write_stage(df: pl.DataFrame, data_dir: str | Path, stage: str, source_id: str) -> Artifact:
    """Write one source's records for a stage atomically; returns the artifact."""
    path = stage_path(data_dir, stage, source_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    df.select(list(RECORD_SCHEMA)).cast(RECORD_SCHEMA).write_parquet(tmp, statistics=False)
    tmp.replace(path)
    return artifact(path)


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
