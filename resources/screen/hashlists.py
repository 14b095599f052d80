"""Known-harmful hash lists: loading, validating and identifying them.

A list is a file in the hash-list directory:

- ``*.csv`` with a header ``hash,type,label`` (label optional), one entry per row;
- ``*.txt`` with one hash per line, all of one type.

Blank lines and lines starting with ``#`` are skipped. Types:

- ``sha256``, ``md5``: of the item's raw bytes (an image file's bytes, a text's UTF-8);
- ``sha256_text``: ``normalize.normalized_sha256`` of a text (NFKC, casefold, whitespace);
- ``phash``, ``dhash``: imagehash's 64-bit perceptual hashes (16 hex digits), matched within
  a Hamming distance (see resources/screen/matching.py).

A list's identity: an optional sidecar ``<stem>.meta.yaml`` beside it may give ``name``,
``version``, ``provider`` and, for a ``.txt`` list, ``type``. Without one, the name is the
file's stem, the version is ``sha256:`` and the first 12 hex digits of the file's sha256, and
the provider is ``unspecified``; a ``.txt`` list's type is then read off the hash length
(32 hex: md5, 64: sha256, 16: phash). The list's own sha256 is that of the list file's bytes.

A malformed list raises: a screen that silently skipped half a list would pass harmful items.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from resources.core.storage import file_sha256

SHA256 = "sha256"
MD5 = "md5"
SHA256_TEXT = "sha256_text"
PHASH = "phash"
DHASH = "dhash"

HEX_LENGTH: dict[str, int] = {
    SHA256: 64,
    MD5: 32,
    SHA256_TEXT: 64,
    PHASH: 16,
    DHASH: 16,
}
HASH_TYPES: tuple[str, ...] = tuple(HEX_LENGTH)
EXACT_TYPES: tuple[str, ...] = (SHA256, MD5, SHA256_TEXT)
PERCEPTUAL_TYPES: tuple[str, ...] = (PHASH, DHASH)

_TYPE_BY_LENGTH = {32: MD5, 64: SHA256, 16: PHASH}
_META_KEYS = {"name", "version", "provider", "type"}
LIST_SUFFIXES = (".csv", ".txt")
ENTRY_SCHEMA = {
    "hash": pl.String(),
    "type": pl.String(),
    "label": pl.String(),
    "line": pl.Int64(),
}


class HashListError(ValueError):
    """A hash list or its sidecar is malformed."""


@dataclass(frozen=True)
class HashList:
    """One list: its identity and its entries (columns hash, type, label, line)."""

    name: str
    version: str
    provider: str
    sha256: str
    path: str
    entries: pl.DataFrame

    def describe(self) -> dict[str, object]:
        """The list's identity and entry counts per type, as recorded in the ledger."""
        counts = self.entries.group_by("type").len().sort("type")
        return {
            "name": self.name,
            "version": self.version,
            "provider": self.provider,
            "sha256": self.sha256,
            "path": self.path,
            "entries": self.entries.height,
            "entries_by_type": dict(zip(counts["type"], counts["len"], strict=True)),
        }


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.stem + ".meta.yaml")


def list_files(directory: Path) -> list[Path]:
    """The list files in a directory, in name order (sidecars are not lists)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in LIST_SUFFIXES)


def unrecognized_files(directory: Path) -> list[Path]:
    """Entries of the folder that are neither a list nor a list's sidecar.

    Suffixes are matched exactly: ``demo.CSV`` is not a list, and a folder holding only it
    would otherwise screen against nothing.
    """
    lists = list_files(directory)
    sidecars = {sidecar_path(p) for p in lists}
    return sorted(p for p in Path(directory).iterdir() if p not in lists and p not in sidecars)


def directory_fingerprint(directory: Path) -> dict[str, str]:
    """file name -> sha256 of the list and its sidecar; changes whenever either changes."""
    out = {}
    for path in list_files(directory):
        meta = sidecar_path(path)
        parts = [file_sha256(path)] + ([file_sha256(meta)] if meta.is_file() else [])
        out[path.name] = hashlib.sha256("".join(parts).encode()).hexdigest()
    return out


def _read_meta(path: Path) -> dict[str, str]:
    meta_file = sidecar_path(path)
    if not meta_file.is_file():
        return {}
    meta = yaml.safe_load(meta_file.read_text(encoding="utf-8")) or {}
    if not isinstance(meta, dict):
        raise HashListError(f"{meta_file}: expected a mapping")
    unknown = set(meta) - _META_KEYS
    if unknown:
        raise HashListError(f"{meta_file}: unknown keys {sorted(unknown)}")
    return {key: str(value) for key, value in meta.items()}


def _read_csv(path: Path) -> pl.DataFrame:
    lines = path.read_text(encoding="utf-8").splitlines()
    # One line at a time, so a stray quote cannot swallow the lines after it.
    rows = [
        (n, next(csv.reader([line])))
        for n, line in enumerate(lines, 1)
        if line.strip() and line[0] != "#"
    ]
    if not rows:
        return pl.DataFrame(schema=ENTRY_SCHEMA)
    header = [c.strip().lower() for c in rows[0][1]]
    if header[:2] != ["hash", "type"] or header[2:] not in ([], ["label"]):
        raise HashListError(f"{path}: header must be 'hash,type' or 'hash,type,label'")
    body = rows[1:]

    def field(fields: list[str], i: int) -> str | None:
        return fields[i].strip() if len(fields) > i else None

    return pl.DataFrame(
        {
            "hash": [(field(f, 0) or "").lower() or None for _, f in body],
            "type": [(field(f, 1) or "").lower() or None for _, f in body],
            "label": [",".join(f[2:]).strip() if len(f) > 2 else None for _, f in body],
            "line": [n for n, _ in body],
        },
        schema=ENTRY_SCHEMA,
    )


def _read_txt(path: Path, hash_type: str | None) -> pl.DataFrame:
    lines = path.read_text(encoding="utf-8").splitlines()
    body = [(n, line.strip().lower()) for n, line in enumerate(lines, 1)]
    body = [(n, h) for n, h in body if h and not h.startswith("#")]
    if hash_type is None and body:
        hash_type = _TYPE_BY_LENGTH.get(len(body[0][1]))
        if hash_type is None:
            raise HashListError(f"{path}:{body[0][0]}: cannot tell the hash type; add a sidecar")
    return pl.DataFrame(
        {
            "hash": [h for _, h in body],
            "type": [hash_type] * len(body),
            "label": [None] * len(body),
            "line": [n for n, _ in body],
        },
        schema=ENTRY_SCHEMA,
    )


def _validate(path: Path, entries: pl.DataFrame) -> pl.DataFrame:
    bad_type = entries.filter(~pl.col("type").is_in(list(HASH_TYPES)) | pl.col("type").is_null())
    if bad_type.height:
        row = bad_type.row(0, named=True)
        raise HashListError(f"{path}:{row['line']}: unknown hash type {row['type']!r}")
    expected = pl.col("type").replace_strict(HEX_LENGTH, return_dtype=pl.Int64())
    bad_hash = entries.filter(
        pl.col("hash").is_null()
        | (pl.col("hash").str.len_chars() != expected)
        | ~pl.col("hash").str.contains(r"^[0-9a-f]*$")
    )
    if bad_hash.height:
        row = bad_hash.row(0, named=True)
        raise HashListError(f"{path}:{row['line']}: not a {row['type']} hash: {row['hash']!r}")
    return entries.unique(subset=["type", "hash"], keep="first", maintain_order=True)


def load_list(path: Path) -> HashList:
    """Read and validate one list file (and its sidecar)."""
    path = Path(path)
    meta = _read_meta(path)
    if path.suffix == ".csv":
        if "type" in meta:
            raise HashListError(f"{sidecar_path(path)}: 'type' is for .txt lists only")
        entries = _read_csv(path)
    elif path.suffix == ".txt":
        hash_type = meta.get("type")
        entries = _read_txt(path, hash_type.lower() if hash_type else None)
    else:
        raise HashListError(f"{path}: a list is a .csv or .txt file")
    entries = _validate(path, entries.cast(ENTRY_SCHEMA))
    digest = file_sha256(path)
    return HashList(
        name=meta.get("name", path.stem),
        version=meta.get("version", f"sha256:{digest[:12]}"),
        provider=meta.get("provider", "unspecified"),
        sha256=digest,
        path=str(path),
        entries=entries,
    )


def load_lists(directory: Path, required: bool = True) -> list[HashList]:
    """Every list in the directory, in file name order. Two lists may not share a name.

    Fails closed: a missing directory, or one without a list, raises unless ``required`` is
    False (params say explicitly that no list is wanted); a file in the folder that is neither
    a list nor a sidecar raises naming it, whatever ``required`` says.
    """
    directory = Path(directory)
    if not directory.is_dir():
        if not required:
            return []
        raise HashListError(f"hash list directory {directory} does not exist")
    strangers = unrecognized_files(directory)
    if strangers:
        names = ", ".join(p.name for p in strangers)
        raise HashListError(
            f"{directory}: not a hash list (expected *.csv, *.txt or <list>.meta.yaml): {names}"
        )
    lists = [load_list(path) for path in list_files(directory)]
    if not lists and required:
        raise HashListError(
            f"{directory}: no hash list; screening against nothing would pass harmful items"
            " (set screen.require_lists: false to run without lists)"
        )
    names = [hash_list.name for hash_list in lists]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise HashListError(f"{directory}: more than one list named {duplicates}")
    return lists
