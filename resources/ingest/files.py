"""A source's files: which are read, in what order, and the source's content hash."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from resources.core.reasons import Reason
from resources.core.storage import pairs_sha256
from resources.ingest.readers import Item, file_kind, reject

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
    """A source's regular files in a stable order, and a reject for every other entry found:
    one outside the root, not a regular file (FIFO, device, socket), a symlink loop, a name
    that is not UTF-8. Nothing here opens a file, so nothing here can block."""
    if not root.exists():
        raise SourcePathError(f"source path {root} does not exist")
    if not root.is_dir():
        refused = _refusal(root, root.parent.resolve(), root.name)
        return ([], [refused]) if refused else ([SourceFile(root, root.name)], [])
    real_root = root.resolve()
    patterns = (glob,) if glob else tuple(f"**/{p}" for p in EXTENSIONS[fmt])
    found = sorted({p for pattern in patterns for p in root.glob(pattern)})
    files, refused = [], []
    for path in found:
        if path.is_dir():
            continue
        name = path.relative_to(root).as_posix()
        problem = _refusal(path, real_root, name)
        if problem is None:
            files.append(SourceFile(path, name))
        else:
            refused.append(problem)
    return files, refused


def display_name(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 shown as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _refusal(path: Path, real_root: Path, raw_name: str) -> Item | None:
    """Why an entry is not read (a reject naming it), or None for a regular file to read."""
    name = display_name(raw_name)
    if name != raw_name:
        return reject(name, Reason.ENCODING, "file name is not valid UTF-8")
    try:
        resolved = path.resolve()  # a symlink loop raises here (RuntimeError on 3.11)
    except (OSError, RuntimeError) as err:
        return reject(name, Reason.UNREADABLE, f"cannot resolve: {_why(err)}")
    if not resolved.is_relative_to(real_root):
        return reject(name, Reason.OUTSIDE_ROOT, "resolves outside the source root")
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return reject(name, Reason.UNREADABLE, f"cannot stat: {_why(err)}")
    if not stat.S_ISREG(mode):
        return reject(name, Reason.UNREADABLE, f"not a regular file ({file_kind(mode)})")
    return None


def content_digest(file_hashes: dict[str, str]) -> str:
    """sha256 over the sorted (name, file sha256) pairs: the source's content hash."""
    return pairs_sha256(file_hashes.items())


def _why(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)
