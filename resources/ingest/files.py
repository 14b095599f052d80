"""A source's files: which are read, in what order, and the source's content hash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resources.core.reasons import Reason
from resources.core.storage import pairs_sha256
from resources.ingest.readers import Item, reject

EXTENSIONS = {
    "jsonl": ("*.jsonl", "*.ndjson"),
    "csv": ("*.csv",),
    "parquet": ("*.parquet",),
    "txt": ("*.txt",),
    "image": ("*.png", "*.jpg", "*.jpeg", "*.gif", "*.bmp", "*.webp", "*.tif", "*.tiff"),
}


class SourcePathError(FileNotFoundError):
    """A source's declared path does not exist."""


@dataclass(frozen=True)
class SourceFile:
    """A file of a source: its path and its name relative to the source root."""

    path: Path
    name: str


def list_files(
    root: Path, fmt: str, glob: str | None = None
) -> tuple[list[SourceFile], list[Item]]:
    """A source's files in a stable order, and a reject for each one outside its root."""
    if not root.exists():
        raise SourcePathError(f"source path {root} does not exist")
    if root.is_file():
        return [SourceFile(root, root.name)], []
    real_root = root.resolve()
    patterns = (glob,) if glob else tuple(f"**/{p}" for p in EXTENSIONS[fmt])
    found = sorted({p for pattern in patterns for p in root.glob(pattern) if not p.is_dir()})
    files, escaped = [], []
    for path in found:
        name = path.relative_to(root).as_posix()
        if path.resolve().is_relative_to(real_root):
            files.append(SourceFile(path, name))
        else:
            escaped.append(reject(name, Reason.OUTSIDE_ROOT, "resolves outside the source root"))
    return files, escaped


def content_digest(file_hashes: dict[str, str]) -> str:
    """sha256 over the sorted (name, file sha256) pairs: the source's content hash."""
    return pairs_sha256(file_hashes.items())
