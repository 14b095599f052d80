"""Lookup tables that let `why` find a record without scanning the ledger.

Two tables, each one row per row of ``records`` and ``drops`` with a non-null key:

    lookup_record_id   (k UBIGINT, entry_seq BIGINT, row_no BIGINT)
        k = the first 8 bytes of record_id, big-endian (zero-padded): order-preserving, so a
        record_id prefix is a range of k
    lookup_source_key  (k UBIGINT, entry_seq BIGINT, row_no BIGINT)
        k = md5_number_upper(source_key), the upper 64 bits of its md5 (a stable function)

The ledger writes them in the same transaction as the rows, each entry's lookup rows sorted by
(k, row_no), so DuckDB's zone maps skip every row group whose k range cannot hold the key. A k
names candidates only: a query still compares the real record_id or source_key, so a shared k
never returns a wrong row. The tables are derived, not chained: verify recomputes them from the
chained rows and names the entry whose lookup rows differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa

from resources.core.ledger_digest import entry_runs

LOOKUPS = {"lookup_record_id": "record_id", "lookup_source_key": "source_key"}
"""Lookup table -> the column it finds rows by."""
INDEXED_TABLES = ("records", "drops")
LOOKUP_DDL = "k UBIGINT, entry_seq BIGINT, row_no BIGINT"
KEY_HASH_SQL = "md5_number_upper({})"
"""How lookup_source_key's k is computed, in the ledger's own SQL (also in the why query)."""
LOOKUP_STREAM_SQL = "md5_number_upper(source_key) AS __source_key_k"
"""The extra column the digest stream computes for an indexed table."""

LookupSink = Callable[[str, int, np.ndarray, np.ndarray], None]
"""Receives (lookup table, entry_seq, sorted k, row_no) when an entry's rows are complete."""


def prefix_key(value: str) -> int:
    """lookup_record_id's k of one record id: its first 8 UTF-8 bytes, big-endian."""
    return int.from_bytes(value.encode("utf-8")[:8].ljust(8, b"\0"), "big")


def prefix_range(prefix: str) -> tuple[int, int]:
    """The k range holding every record id that starts with ``prefix``."""
    head = prefix.encode("utf-8")[:8]
    low = int.from_bytes(head.ljust(8, b"\0"), "big")
    high = int.from_bytes(head.ljust(8, b"\xff"), "big")
    return low, high


def prefix_keys(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(k, valid) for a text column: first 8 bytes of each value, big-endian; no Python loop."""
    array = array.cast(pa.large_string())
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    array = array.fill_null("") if array.null_count else array
    offsets = np.frombuffer(array.buffers()[1], np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer else np.zeros(1, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    keys = np.zeros(len(array), np.uint64)
    for i in range(8):
        present = lengths > i
        byte = np.where(present, data[np.minimum(starts + i, max(len(data) - 1, 0))], 0)
        keys |= byte.astype(np.uint64) << np.uint64(8 * (7 - i))
    return keys, valid


class LookupBuilder:
    """Derives each entry's lookup rows from a stream of its rows (see ledger_digest)."""

    def __init__(self, sink: LookupSink | None = None) -> None:
        self.sink = sink
        self.digests: dict[str, dict[int, str]] = {t: {} for t in LOOKUPS}
        self._parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in LOOKUPS}
        self._seq: int | None = None

    def __call__(self, seq: int, batch: pa.RecordBatch) -> None:
        if seq != self._seq:
            self.finish()
            self._seq = seq
        row_no = batch.column("row_no").to_numpy(zero_copy_only=False).astype(np.int64)
        ids, id_valid = prefix_keys(batch.column("record_id"))
        hashed = batch.column("__source_key_k")
        key_valid = hashed.is_valid().to_numpy(zero_copy_only=False)
        keys = hashed.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
        self._parts["lookup_record_id"].append((ids[id_valid], row_no[id_valid]))
        self._parts["lookup_source_key"].append((keys[key_valid], row_no[key_valid]))

    def finish(self) -> None:
        """Close the current entry: sort its lookup rows, keep them or their digest."""
        if self._seq is None:
            return
        for table, parts in self._parts.items():
            keys = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint64)
            rows = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
            order = np.lexsort((rows, keys))
            keys, rows = keys[order], rows[order]
            if len(keys):
                self.digests[table][self._seq] = lookup_digest(keys, rows)
                if self.sink is not None:
                    self.sink(table, self._seq, keys, rows)
            parts.clear()
        self._seq = None


def lookup_digest(keys: np.ndarray, rows: np.ndarray) -> str:
    """One entry's lookup rows, sorted by (k, row_no), as one sha256."""
    digest = hashlib.sha256(np.ascontiguousarray(keys, np.uint64).tobytes())
    digest.update(np.ascontiguousarray(rows, np.int64).tobytes())
    return digest.hexdigest()


def lookup_writer(con: duckdb.DuckDBPyConnection) -> LookupSink:
    """A sink that inserts one entry's derived lookup rows (sorted by k) into its table."""

    def insert(table: str, seq: int, keys: np.ndarray, rows: np.ndarray) -> None:
        batch = pa.table(
            {
                "k": pa.array(keys, pa.uint64()),
                "entry_seq": pa.array(np.full(len(keys), seq, np.int64)),
                "row_no": pa.array(rows.astype(np.int64)),
            }
        )
        con.register("_lookup", batch)
        try:
            con.execute(f"INSERT INTO {table} SELECT k, entry_seq, row_no FROM _lookup")
        finally:
            con.unregister("_lookup")

    return insert


def stored_lookup_digests(
    con: duckdb.DuckDBPyConnection, table: str, where: str = "true"
) -> tuple[dict[int, str], int | None]:
    """({entry_seq: digest} of the stored lookup rows, first entry stored in two places)."""
    digests: dict[int, str] = {}
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    current: int | None = None
    misplaced: int | None = None

    def close() -> None:
        keys = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        order = np.lexsort((rows, keys))
        digests[current] = lookup_digest(keys[order], rows[order])
        parts.clear()

    sql = f"SELECT entry_seq, k, row_no FROM {table} WHERE {where}"
    for batch in con.sql(sql).to_arrow_reader(1 << 17):
        seqs = batch.column("entry_seq").fill_null(-1).to_numpy(zero_copy_only=False)
        keys = batch.column("k").fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
        rows = batch.column("row_no").fill_null(-1).to_numpy(zero_copy_only=False)
        for start, stop in entry_runs(seqs):
            seq = int(seqs[start])
            if seq != current:
                if parts:
                    close()
                if seq in digests and misplaced is None:
                    misplaced = seq
                current = seq
            parts.append((keys[start:stop], rows[start:stop]))
    if parts:
        close()
    return digests, misplaced
