"""Screening records against known-harmful hash lists.

Two steps, so a re-screen against new lists need not decode every image again:

1. ``hash_records``: each record's hashes (sha256 and md5 of its raw bytes, sha256_text of its
   text, phash and dhash of its image in the eight dihedral orientations). Hashes only: the
   frame holds no content and is safe to keep. Images are hashed on the configured engine
   (resources/core/engine.py), whose workers read the files; texts in this process.
2. ``Screener.match``: every (record, list entry) pair that matches. sha256, md5 and
   sha256_text match by equality (a hash join). phash and dhash match when some orientation of
   the record's image is within the type's Hamming distance of the entry, found through a
   multi-index-hashing index (resources/core/hamming.py) rather than a scan of the list.

A record whose bytes cannot be read, or whose image cannot be decoded, cannot be screened; it
is reported in ``hash_error`` so the caller can hold it back rather than pass it unscreened.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from resources.core.engine import LOCAL, EngineConfig, batch_rows, map_batches
from resources.core.hamming import HammingIndex
from resources.core.normalize import normalized_sha256
from resources.core.perceptual import ORIENTATIONS, oriented_hashes
from resources.core.records import IMAGE, TEXT, record_id
from resources.core.storage import write_parquet
from resources.screen.config import ScreenConfig
from resources.screen.hashlists import (
    DHASH,
    EXACT_TYPES,
    MD5,
    PERCEPTUAL_TYPES,
    PHASH,
    SHA256,
    SHA256_TEXT,
    HashList,
)

_DEFAULTS = ScreenConfig()

HASH_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "kind": pl.String(),
    "image_path": pl.String(),
    SHA256: pl.String(),
    MD5: pl.String(),
    SHA256_TEXT: pl.String(),
    PHASH: pl.String(),
    DHASH: pl.String(),
    "phash_oriented": pl.List(pl.UInt64()),
    "dhash_oriented": pl.List(pl.UInt64()),
    "hash_error": pl.String(),
}

MATCH_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "hash_type": pl.String(),
    "record_hash": pl.String(),
    "orientation": pl.String(),
    "distance": pl.Int64(),
    "list_name": pl.String(),
    "list_version": pl.String(),
    "list_sha256": pl.String(),
    "entry_hash": pl.String(),
    "entry_label": pl.String(),
    "entry_line": pl.Int64(),
}

_ENTRY_COLUMNS = ["list_name", "list_version", "list_sha256", "entry_hash", "entry_label"]
MATCH_COLUMNS = [*_ENTRY_COLUMNS[:3], "hash_type", *_ENTRY_COLUMNS[3:], "distance"]
"""What names a match everywhere it is reported: the list, the entry, and how near it was."""


def _content_bytes(row: dict, base_dir: Path | None) -> bytes:
    if row["kind"] == TEXT:
        return row["text"].encode("utf-8")
    path = Path(row["image_path"])
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path.read_bytes()


CHANGED = "changed: the file's bytes no longer hash to the record_id ingest gave it"


def _hash_one(row: dict, base_dir: Path | None, verify_ids: bool) -> dict:
    out = {key: row.get(key) for key in ("record_id", "source_id", "source_key", "kind")}
    out["image_path"] = row.get("image_path")
    out.update({SHA256: None, MD5: None, SHA256_TEXT: None, PHASH: None, DHASH: None})
    out.update({"phash_oriented": None, "dhash_oriented": None, "hash_error": None})
    try:
        content = _content_bytes(row, base_dir)
    except (OSError, TypeError, AttributeError) as error:
        out["hash_error"] = f"read: {type(error).__name__}"
        return out
    out[SHA256] = hashlib.sha256(content).hexdigest()
    out[MD5] = hashlib.md5(content, usedforsecurity=False).hexdigest()
    if row["kind"] == TEXT:
        out[SHA256_TEXT] = normalized_sha256(row["text"])
        return out
    # An image is a path: its file can change after ingest. Hash what is there now (so a
    # harmful replacement still matches) but flag it, so it is held back, not passed.
    if verify_ids and record_id(IMAGE, content) != row["record_id"]:
        out["hash_error"] = CHANGED
    try:
        with Image.open(io.BytesIO(content)) as image:
            oriented = oriented_hashes(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        out["hash_error"] = f"decode: {type(error).__name__}"
        return out
    out["phash_oriented"] = list(oriented.phash)
    out["dhash_oriented"] = list(oriented.dhash)
    out[PHASH] = f"{oriented.phash[0]:016x}"
    out[DHASH] = f"{oriented.dhash[0]:016x}"
    return out


def hash_records(
    records: pl.DataFrame,
    base_dir: Path | None = None,
    verify_ids: bool = True,
    engine: EngineConfig = LOCAL,
) -> pl.DataFrame:
    """Every hash a list can name, for each record (HASH_SCHEMA), in the records' order. Never
    the content.

    With verify_ids, an image whose bytes do not hash to its record_id gets hash_error CHANGED.
    Images are read, decoded and hashed on the engine (_hash_files); texts here.
    """
    rows = list(records.iter_rows(named=True))
    # A text takes microseconds to hash, less than sending it; and a listed text must not
    # reach a cluster's object store (which spills to disk) before it is screened.
    hashed = [_hash_one(row, base_dir, verify_ids) if row["kind"] == TEXT else None for row in rows]
    files = [i for i, row in enumerate(rows) if row["kind"] != TEXT]
    located = [{key: rows[i].get(key) for key in _LOCATION} for i in files]
    for i, out in zip(files, _hash_files(located, base_dir, verify_ids, engine), strict=True):
        hashed[i] = out
    return pl.DataFrame(hashed, schema=HASH_SCHEMA)


_LOCATION = ("record_id", "source_id", "source_key", "kind", "image_path")
"""What a worker needs to hash an image: where it is and what it should hash to, not bytes."""


def _hash_files(
    rows: list[dict], base_dir: Path | None, verify_ids: bool, engine: EngineConfig
) -> list[dict]:
    """_hash_one of each row, in order: in this process on the local engine, as before; on Ray
    in one task per CPU of the cluster, each worker reading its files itself (so it must see
    the same filesystem)."""
    if not rows:
        return []  # a batch of texts only: nothing to send, no cluster to join
    step = batch_rows(len(rows), engine, most=len(rows))
    batches = [rows[s : s + step] for s in range(0, len(rows), step)]
    done = map_batches(partial(_hash_batch, base_dir, verify_ids), batches, engine)
    return [out for batch in done for out in batch]


def _hash_batch(base_dir: Path | None, verify_ids: bool, rows: list[dict]) -> list[dict]:
    """One task's work, on whichever engine runs it."""
    return [_hash_one(row, base_dir, verify_ids) for row in rows]


def _entries(lists: Iterable[HashList]) -> pl.DataFrame:
    frames = [
        hash_list.entries.select(
            pl.col("type").alias("hash_type"),
            pl.col("hash").alias("entry_hash"),
            pl.col("label").alias("entry_label"),
            pl.col("line").alias("entry_line"),
            pl.lit(hash_list.name).alias("list_name"),
            pl.lit(hash_list.version).alias("list_version"),
            pl.lit(hash_list.sha256).alias("list_sha256"),
        )
        for hash_list in lists
    ]
    if not frames:
        return pl.DataFrame(
            schema={
                "hash_type": pl.String(),
                "entry_hash": pl.String(),
                "entry_label": pl.String(),
                "entry_line": pl.Int64(),
                "list_name": pl.String(),
                "list_version": pl.String(),
                "list_sha256": pl.String(),
            }
        )
    return pl.concat(frames)


class Screener:
    """Matches hashed records against a set of lists."""

    def __init__(
        self,
        lists: Iterable[HashList],
        max_distance: dict[str, int] | None = None,
        min_minority_bits: dict[str, int] | None = None,
        scan_below: int | None = None,
    ):
        self.lists = list(lists)
        self.max_distance = {**_DEFAULTS.max_distance, **(max_distance or {})}
        self.min_minority_bits = {**_DEFAULTS.min_minority_bits, **(min_minority_bits or {})}
        entries = _entries(self.lists)
        self.exact = {t: entries.filter(pl.col("hash_type") == t) for t in EXACT_TYPES}
        self.perceptual: dict[str, tuple[HammingIndex, pl.DataFrame]] = {}
        skipped = []
        for hash_type in PERCEPTUAL_TYPES:
            typed = entries.filter(pl.col("hash_type") == hash_type)
            values = typed["entry_hash"].str.to_integer(base=16, dtype=pl.UInt64).to_numpy()
            ones = np.bitwise_count(values).astype(np.int64)
            informative = np.minimum(ones, 64 - ones) >= self.min_minority_bits[hash_type]
            skipped.append(typed.filter(~pl.Series(informative)))
            typed = typed.filter(pl.Series(informative))
            values = values[informative]
            index = HammingIndex(values, self.max_distance[hash_type], scan_below=scan_below)
            self.perceptual[hash_type] = (index, typed)
        self.low_information = pl.concat(skipped)
        """Perceptual entries too uniform to match by distance; they are not screened for."""

    def match(self, hashes: pl.DataFrame) -> pl.DataFrame:
        """Every (record, list entry) match (MATCH_SCHEMA), one row per pair."""
        frames = [self._match_exact(hashes, t) for t in EXACT_TYPES]
        frames += [self._match_perceptual(hashes, t) for t in PERCEPTUAL_TYPES]
        return pl.concat([f.select(list(MATCH_SCHEMA)).cast(MATCH_SCHEMA) for f in frames])

    def _match_exact(self, hashes: pl.DataFrame, hash_type: str) -> pl.DataFrame:
        entries = self.exact[hash_type]
        records = hashes.select(
            "record_id",
            "source_id",
            "source_key",
            pl.col(hash_type).alias("record_hash"),
        ).filter(pl.col("record_hash").is_not_null())
        joined = records.join(entries, left_on="record_hash", right_on="entry_hash", how="inner")
        return joined.with_columns(
            pl.col("record_hash").alias("entry_hash"),
            pl.lit(None, dtype=pl.String()).alias("orientation"),
            pl.lit(0, dtype=pl.Int64()).alias("distance"),
        )

    def _match_perceptual(self, hashes: pl.DataFrame, hash_type: str) -> pl.DataFrame:
        index, entries = self.perceptual[hash_type]
        column = f"{hash_type}_oriented"
        images = hashes.select("record_id", "source_id", "source_key", column).filter(
            pl.col(column).is_not_null()
        )
        if images.height == 0 or len(index) == 0:
            return pl.DataFrame(schema=MATCH_SCHEMA)
        queries = images[column].explode().to_numpy().astype(np.uint64)
        query_idx, entry_idx, distance = index.query(queries)
        if len(query_idx) == 0:
            return pl.DataFrame(schema=MATCH_SCHEMA)
        per_record = len(ORIENTATIONS)
        found = pl.DataFrame(
            {
                "row": query_idx // per_record,
                "orientation": np.array(ORIENTATIONS)[query_idx % per_record],
                "record_hash": [f"{int(q):016x}" for q in queries[query_idx]],
                "entry": entry_idx,
                "distance": distance,
            }
        )
        # A symmetric image can match one entry in several orientations: keep the closest.
        found = found.sort("distance", "row", "entry").unique(
            subset=["row", "entry"], keep="first", maintain_order=True
        )
        rows = images.select("record_id", "source_id", "source_key")[found["row"]]
        matched = entries[found["entry"]]
        return pl.concat(
            [rows, found.select("orientation", "record_hash", "distance"), matched],
            how="horizontal",
        )


# -- the hash cache: hashes of every record ever screened, keyed by content-addressed id ------

CACHE_COLUMNS = [
    "record_id",
    "kind",
    SHA256,
    MD5,
    SHA256_TEXT,
    PHASH,
    DHASH,
    "phash_oriented",
    "dhash_oriented",
]


def empty_cache() -> pl.DataFrame:
    return pl.DataFrame(schema={c: HASH_SCHEMA[c] for c in CACHE_COLUMNS})


def read_hash_cache(path: Path) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        return empty_cache()
    return (
        pl.read_parquet(path).select(CACHE_COLUMNS).cast({c: HASH_SCHEMA[c] for c in CACHE_COLUMNS})
    )


def write_hash_cache(cache: pl.DataFrame, path: Path) -> None:
    write_parquet(cache, path)


def add_to_hash_cache(hashes: pl.DataFrame, path: Path) -> None:
    """Merge these hashes into the cache file, read-merge-write under an exclusive flock on a
    sibling .lock file, so two ingests at once cannot lose each other's rows (a record missing
    from the cache would escape a later list)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_hash_cache(merge_cache(read_hash_cache(path), hashes), path)


def hash_with_cache(
    records: pl.DataFrame,
    cache: pl.DataFrame,
    base_dir: Path | None = None,
    engine: EngineConfig = LOCAL,
) -> pl.DataFrame:
    """hash_records (on the engine) for every occurrence, decoding only records the cache does
    not hold.

    record_id is a hash of the content, so a cached row is the same content's hashes. An image
    file is still read and checked against its record_id (cheap next to decoding): one that
    changed since ingest is hashed afresh and flagged.
    """
    # Only images come from the cache: decoding is the cost. A text is hashed as it is now,
    # since a stage before screen (scrub) may rewrite it under the same record_id.
    cached = pl.col("record_id").is_in(cache["record_id"].implode()) & (pl.col("kind") == IMAGE)
    suspects = records.filter(cached)
    changed = pl.Series([not _unchanged(r, base_dir) for r in suspects.iter_rows(named=True)])
    stale = suspects.filter(changed) if suspects.height else suspects
    rest = records.join(stale, on=["source_id", "source_key"], how="anti")
    missing = rest.filter(~cached).unique("record_id", keep="first", maintain_order=True)
    fresh = hash_records(missing, base_dir, engine=engine)
    by_id = pl.concat(
        [
            cache.filter(
                pl.col("record_id").is_in(rest.filter(cached)["record_id"].implode())
            ).with_columns(pl.lit(None, dtype=pl.String()).alias("hash_error")),
            fresh.select([*CACHE_COLUMNS, "hash_error"]),
        ]
    ).unique("record_id", keep="first")
    located = rest.select("record_id", "source_id", "source_key", "kind", "image_path")
    joined = located.join(by_id.drop("kind"), on="record_id", how="left")
    hashed = pl.concat(
        [
            joined.select(list(HASH_SCHEMA)).cast(HASH_SCHEMA),
            hash_records(stale, base_dir, engine=engine),
        ]
    )
    order = records.select("source_id", "source_key")
    return order.join(
        hashed, on=["source_id", "source_key"], how="left", maintain_order="left"
    ).select(list(HASH_SCHEMA))


def _unchanged(row: dict, base_dir: Path | None) -> bool:
    try:
        return record_id(IMAGE, _content_bytes(row, base_dir)) == row["record_id"]
    except (OSError, TypeError, AttributeError):
        return False


def merge_cache(cache: pl.DataFrame, hashes: pl.DataFrame) -> pl.DataFrame:
    """The cache with every successfully hashed record added or brought up to date."""
    good = hashes.filter(pl.col("hash_error").is_null()).select(CACHE_COLUMNS)
    good = good.unique("record_id", keep="first", maintain_order=True)
    older = cache.filter(~pl.col("record_id").is_in(good["record_id"].implode()))
    return pl.concat([older, good])


def original_text_hashes(originals: pl.DataFrame) -> pl.DataFrame:
    """Exact hashes (CACHE_COLUMNS) of texts as ingest read them, keyed by their record_id.

    A stage before screen (scrub) may rewrite a text under the same record_id; a list names
    the original. record_id is the hash of the original text, so these rows can be cached.
    """
    texts = originals.filter((pl.col("kind") == TEXT) & pl.col("text").is_not_null()).unique(
        "record_id", keep="first", maintain_order=True
    )
    hashed = hash_records(texts.select(list(texts.columns)))
    return hashed.filter(pl.col("hash_error").is_null()).select(CACHE_COLUMNS)
