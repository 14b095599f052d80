"""Lookup tables that let `why` find a record without scanning the ledger.

Two tables, each one row per row of ``records`` and ``drops`` whose key is not null:

    lookup_record_id   (k UBIGINT, entry_seq BIGINT, row_no BIGINT)
        k = the first 8 bytes of record_id, big-endian, zero-padded: order-preserving, so a
        record_id prefix is a range of k
    lookup_source_key  (k UBIGINT, entry_seq BIGINT, row_no BIGINT)
        k = a 64-bit hash of source_key (``text_hashes``: polynomial, then splitmix64)

Both keys are computed by compiled loops over Arrow buffers (no per-row Python) when the
append and verify derive them, and in plain Python for the one value a `why` asks about. The
ledger writes each entry's lookup rows in the same transaction as the rows, ordered by the top
16 bits of k, so DuckDB's zone maps skip every row group whose k range cannot hold the key.
A k names candidates only: a query still compares the real record_id or source_key, so a
shared k never returns a wrong row. The tables are derived, not chained: verify derives them
again from the chained rows and names the entry whose lookup rows differ.
"""

from __future__ import annotations

import hashlib

import duckdb
import numba
import numpy as np
import pyarrow as pa

from resources.core.ledger_digest import entry_runs, text_buffers
from resources.core.ledger_insert import insert_arrow

INDEXED_TABLES = ("records", "drops")
LOOKUP_DDL = "k UBIGINT, entry_seq BIGINT, row_no BIGINT"
CHUNK_ROWS = 1 << 17
"""Rows hashed at a time: bounds the temporary arrays of the vectorised key hash."""
_MULTIPLIER = np.uint64(0x100000001B3)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_MASK = (1 << 64) - 1
_MULTIPLIER_INT, _MIX_INT = int(_MULTIPLIER), tuple(int(m) for m in _MIX)


def prefix_keys(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """lookup_record_id's (k, valid): the first 8 UTF-8 bytes of each value, big-endian,
    zero-padded; order-preserving, so the ids with a given prefix are one range of k."""
    valid, offsets, data = text_buffers(array)
    return _prefixes(offsets, data), valid


def text_hashes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """lookup_source_key's (k, valid): a 64-bit polynomial hash of each value's UTF-8 bytes,
    sum((byte + 1) * MULTIPLIER**i) mod 2**64, finished with splitmix64; a fixed definition
    (not a library's hash, which may change between versions)."""
    valid, offsets, data = text_buffers(array)
    return _polynomials(offsets, data), valid


# Compiled loops: one pass over the bytes, where numpy needed a uint64 per byte (8x the
# text) and a gather per row; the append hashes every key of every entry.
@numba.njit(cache=True, nogil=True)
def _prefixes(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    out = np.zeros(len(offsets) - 1, np.uint64)
    for row in range(len(out)):
        start, end = offsets[row], offsets[row + 1]
        k = np.uint64(0)
        for j in range(8):
            byte = data[start + j] if start + j < end else 0
            k = (k << np.uint64(8)) | np.uint64(byte)
        out[row] = k
    return out


@numba.njit(cache=True, nogil=True)
def _polynomials(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    out = np.zeros(len(offsets) - 1, np.uint64)
    for row in range(len(out)):
        start, end = offsets[row], offsets[row + 1]
        total, power = np.uint64(0), np.uint64(1)
        for j in range(start, end):
            total += (np.uint64(data[j]) + np.uint64(1)) * power
            power *= _MULTIPLIER
        mixed = total ^ (np.uint64(end - start) * _MIX[1])
        mixed = (mixed ^ (mixed >> np.uint64(30))) * _MIX[0]
        mixed = (mixed ^ (mixed >> np.uint64(27))) * _MIX[1]
        out[row] = mixed ^ (mixed >> np.uint64(31))
    return out


KEYS = {
    "lookup_record_id": ("record_id", prefix_keys),
    "lookup_source_key": ("source_key", text_hashes),
}
"""Lookup table -> (the column it finds rows by, how k is computed from that column)."""
LOOKUPS = tuple(KEYS)


def key_of(lookup: str, value: str) -> int:
    """One value's k in ``lookup`` (what a query passes as a parameter), in plain Python by
    the same definitions: a `why` from the CLI asks one question, and loading the compiled
    loops would cost it about 0.65 s."""
    return _ONE_KEY[lookup](value.encode("utf-8"))


def _one_polynomial(data: bytes) -> int:
    """``_polynomials`` of one value, with Python ints kept to 64 bits."""
    total, power = 0, 1
    for byte in data:
        total = (total + (byte + 1) * power) & _MASK
        power = (power * _MULTIPLIER_INT) & _MASK
    mixed = total ^ ((len(data) * _MIX_INT[1]) & _MASK)
    mixed = ((mixed ^ (mixed >> 30)) * _MIX_INT[0]) & _MASK
    mixed = ((mixed ^ (mixed >> 27)) * _MIX_INT[1]) & _MASK
    return mixed ^ (mixed >> 31)


def prefix_range(prefix: str) -> tuple[int, int]:
    """The k range of lookup_record_id holding every record id that starts with ``prefix``."""
    head = prefix.encode("utf-8")
    return _prefix_key(head, b"\0"), _prefix_key(head, b"\xff")


def _prefix_key(data: bytes, pad: bytes = b"\0") -> int:
    return int.from_bytes(data[:8].ljust(8, pad), "big")


_ONE_KEY = {"lookup_record_id": _prefix_key, "lookup_source_key": _one_polynomial}
"""Lookup table -> k of one value's UTF-8 bytes (``KEYS``' definitions, one value at a time)."""


def entry_keys(batch: pa.Table | pa.RecordBatch, lookup: str) -> tuple[np.ndarray, np.ndarray]:
    """(row_no, k) of one entry's rows that have a key, in row order, hashed in chunks."""
    column, derive = KEYS[lookup]
    rows_out, keys_out = [], []
    if column not in batch.column_names:  # not given: stored as NULL, so nothing to find
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    for start in range(0, batch.num_rows, CHUNK_ROWS):
        part = batch.slice(start, CHUNK_ROWS)
        keys, valid = derive(part.column(column))
        row_no = part.column("row_no").fill_null(-1).to_numpy(zero_copy_only=False)
        rows_out.append(row_no[valid].astype(np.int64))
        keys_out.append(keys[valid])
    if not rows_out:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(rows_out), np.concatenate(keys_out)


def _order_by_key(keys: np.ndarray) -> np.ndarray:
    """An order of ``keys`` by their top 16 bits, which is all zone maps need: they keep one
    k range per row group of 122,880 rows, and an entry (at most MAX_ENTRY_ROWS rows) spans
    at most ten, each of which then covers a narrow slice of k (a hex record id's 16 bits
    are its first two characters: 256 values). numpy sorts 16-bit keys by radix, stably:
    a third of the time of the full sort of uint64 this replaced."""
    return np.argsort((keys >> np.uint64(48)).astype(np.uint16), kind="stable")


def lookup_rows(batch: pa.Table, seq: int) -> dict[str, pa.Table]:
    """One entry's lookup rows, ordered by k's top bits, per lookup table (``batch`` has
    row_no)."""
    out = {}
    for lookup in LOOKUPS:
        rows, keys = entry_keys(batch, lookup)
        if len(rows):
            order = _order_by_key(keys)
            out[lookup] = pa.table(
                {
                    "k": pa.array(keys[order], pa.uint64()),
                    "entry_seq": pa.array(np.full(len(rows), seq, np.int64)),
                    "row_no": pa.array(rows[order]),
                }
            )
    return out


def write_lookups(con: duckdb.DuckDBPyConnection, lookups: dict[str, pa.Table]) -> None:
    """Insert lookup rows made by ``lookup_rows``."""
    for lookup, rows in lookups.items():
        insert_arrow(con, lookup, rows)


class DerivedLookups:
    """The digest of each entry's lookup rows, derived while its rows stream past in row_no
    order (a consumer for ledger_digest.stream_entries)."""

    def __init__(self) -> None:
        self.digests: dict[str, dict[int, str]] = {t: {} for t in LOOKUPS}
        self._parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in LOOKUPS}
        self._seq: int | None = None

    def __call__(self, seq: int, batch: pa.RecordBatch) -> None:
        if seq != self._seq:
            self.finish()
            self._seq = seq
        for lookup in LOOKUPS:
            self._parts[lookup].append(entry_keys(batch, lookup))

    def reset(self) -> None:
        """Drop the entry in progress (its table's scan restarts, sorted)."""
        for parts in self._parts.values():
            parts.clear()
        self._seq = None

    def finish(self) -> None:
        """Close the current entry."""
        if self._seq is None:
            return
        for lookup, parts in self._parts.items():
            rows = np.concatenate([p[0] for p in parts])
            keys = np.concatenate([p[1] for p in parts])
            if len(rows):
                self.digests[lookup][self._seq] = lookup_digest(rows, keys)
            parts.clear()
        self._seq = None


def lookup_digest(rows: np.ndarray, keys: np.ndarray) -> str:
    """One entry's lookup rows, in row_no order, as one sha256."""
    digest = hashlib.sha256(np.ascontiguousarray(rows, np.int64).tobytes())
    digest.update(np.ascontiguousarray(keys, np.uint64).tobytes())
    return digest.hexdigest()


def _by_row(rows: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Stored lookup rows put in row_no order by scattering (no sort); None if a row_no is
    repeated or out of any entry's range (rows that cannot have been derived)."""
    if not len(rows):
        return rows, keys
    if rows.min() < 0 or rows.max() >= 1 << 40:
        return None
    top = int(rows.max()) + 1
    if top > 4 * len(rows) + (1 << 20):  # sparse: sorting is cheaper than a dense scatter
        order = np.argsort(rows, kind="stable")
        rows, keys = rows[order], keys[order]
        return None if np.any(np.diff(rows) == 0) else (rows, keys)
    filled = np.bincount(rows, minlength=top)
    if filled.max() > 1:
        return None
    dense = np.zeros(top, np.uint64)
    dense[rows] = keys
    present = np.flatnonzero(filled)
    return present.astype(np.int64), dense[present]


def stored_lookup_digests(
    con: duckdb.DuckDBPyConnection, lookup: str, where: str = "true"
) -> tuple[dict[int, str], int | None]:
    """({entry_seq: digest} of the stored lookup rows, first entry that is malformed: stored
    in two places or with a repeated row_no)."""
    digests: dict[int, str] = {}
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    state: dict[str, int | None] = {"seq": None, "bad": None}

    def close() -> None:
        ordered = _by_row(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
        seq = state["seq"]
        if ordered is None or seq in digests:
            state["bad"] = seq if state["bad"] is None else min(state["bad"], seq)
        else:
            digests[seq] = lookup_digest(*ordered)
        parts.clear()

    sql = f"SELECT entry_seq, row_no, k FROM {lookup} WHERE {where}"
    for batch in con.sql(sql).to_arrow_reader(1 << 17):
        seqs = batch.column("entry_seq").fill_null(-1).to_numpy(zero_copy_only=False)
        rows = batch.column("row_no").fill_null(-1).to_numpy(zero_copy_only=False)
        keys = batch.column("k").fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
        for start, stop in entry_runs(seqs):
            seq = int(seqs[start])
            if seq != state["seq"] and parts:
                close()
            state["seq"] = seq
            parts.append((rows[start:stop], keys[start:stop]))
    if parts:
        close()
    return digests, state["bad"]
