"""Banding of signatures and candidate pairs from equal band keys, grouped out of core.

Text MinHash signatures are cut into b bands of r rows, so each item gets a few (band, key)
rows, and items sharing a row are candidates. (Images are paired by the multi-index Hamming
search of resources/core/hamming.py instead.) The grouping runs in DuckDB with a memory limit
and a spill directory, so it does not need the whole table in RAM.
"""

import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from resources.dedup.minhash import mix64

_U64 = np.uint64
_BLOCK = 16_384


def band_keys(
    sig: np.ndarray, bands: int, rows: int, items: np.ndarray | None = None
) -> np.ndarray:
    """(items x bands) uint64: each band's r values folded into one 64-bit key.

    items selects rows of sig (all by default), gathered a block at a time, so no copy of
    all selected signatures is ever made.
    """
    n = sig.shape[0] if items is None else items.size
    keys = np.empty((n, bands), dtype=_U64)
    for lo in range(0, n, _BLOCK):
        block = sig[lo : lo + _BLOCK] if items is None else sig[items[lo : lo + _BLOCK]]
        block = block.astype(_U64)
        for band in range(bands):
            acc = np.full(block.shape[0], _U64(band + 1), dtype=_U64)
            for col in range(band * rows, (band + 1) * rows):
                acc = mix64(acc ^ block[:, col])
            keys[lo : lo + _BLOCK, band] = acc
    return keys


def candidate_pairs(
    keys: np.ndarray,
    memory_limit: str = "1GB",
    spill_dir: Path | None = None,
    max_bucket: int = 1000,
) -> np.ndarray:
    """Distinct (i, j), i < j, of items (row numbers of keys) that share a key in some band.

    One band at a time goes through DuckDB, so memory holds one band's (key, item) rows, not
    all of them. A bucket holding more than max_bucket items (a key shared by a mass of
    items) only links each to the bucket's first item: that keeps it connected for
    clustering without a quadratic blow-up, and verification still decides every pair.
    """
    n, bands = keys.shape
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    items = pa.array(np.arange(n, dtype=np.int64))
    found: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(dir=spill_dir) as tmp:
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": tmp})
        try:
            for band in range(bands):
                table = pa.table({"item": items, "key": pa.array(keys[:, band])})
                con.register("band_rows", table)
                result = con.sql(_PAIRS_SQL, params=[max_bucket]).to_arrow_table()
                con.unregister("band_rows")
                if result.num_rows:
                    found.append(
                        np.column_stack(
                            [result.column("a").to_numpy(), result.column("b").to_numpy()]
                        )
                    )
        finally:
            con.close()
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


_PAIRS_SQL = """
WITH dup AS (
    SELECT key, count(*) AS size, min(item) AS head
    FROM band_rows GROUP BY key HAVING count(*) > 1
),
shared AS (
    SELECT b.key, b.item, d.size, d.head FROM band_rows b JOIN dup d ON b.key = d.key
)
SELECT l.item AS a, r.item AS b
FROM shared l JOIN shared r ON l.key = r.key AND l.item < r.item
WHERE l.size <= $1
UNION ALL
SELECT head AS a, item AS b FROM shared WHERE size > $1 AND item <> head
"""
