"""Batch digests of ledger entries, computed by streaming the stored rows through Arrow.

Format v2 (every entry appended since the ledger scale work): the stored rows of one entry,
in row_no order, every column but entry_seq, each column canonicalised by DuckDB (integers as
BIGINT, timestamps as epoch microseconds, doubles, booleans, everything else as text) and
hashed column-wise from its Arrow buffers: a validity stream, a value stream (fixed-width
values, or each text's byte length) and, for text, the UTF-8 bytes. Each stream has its own
sha256, so the digest does not depend on how the rows were chunked. The batch digest is

    "v2:" + sha256("assay-ledger-v2|<table>|<n_rows>"
                   + "|<column>:<kind>:<h_valid>:<h_values>:<h_bytes>" for each column)

and the chain is unchanged: entry_hash = sha256(prev_hash || batch_digest), so the "v2:" prefix
is covered by the chain too. Format v1 (entries written before) is sha256('<table>|' ||
string_agg(sha256(length-prefixed fields), '' ORDER BY row_no)) computed inside DuckDB; it is
still verified, by its own SQL, so an old ledger keeps verifying.

Rows are streamed in storage order, which for an append-only ledger is (entry_seq, row_no)
order; a scan that finds them out of that order (a row inserted later with an old entry_seq)
is redone sorted, so the answer never depends on where a row sits.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

V2 = "v2:"
STREAM_ROWS = 1 << 17
"""Rows per Arrow batch when streaming a table: bounds verify's memory, whatever the size."""

_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}


class OutOfOrder(Exception):
    """Rows of a table were not stored in (entry_seq, row_no) order."""


Column = tuple[str, str, str, str]
"""(name, kind, SQL expression giving its canonical value, DuckDB type) of a hashed column."""


def canonical_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[Column]:
    """Every hashed column of ``table``, in the table's column order."""
    out = []
    for name, dtype, *_ in con.execute(f"DESCRIBE {table}").fetchall():
        if name == "entry_seq":
            continue
        if dtype in _INTEGERS:
            out.append((name, "int", f'CAST("{name}" AS BIGINT)', dtype))
        elif dtype in ("DOUBLE", "FLOAT"):
            out.append((name, "float", f'CAST("{name}" AS DOUBLE)', dtype))
        elif dtype == "BOOLEAN":
            out.append((name, "bool", f'"{name}"', dtype))
        elif dtype.startswith("TIMESTAMP"):
            out.append((name, "int", f'epoch_us("{name}")', dtype))
        else:
            out.append((name, "text", f'CAST("{name}" AS VARCHAR)', dtype))
    return out


_CANONICAL_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.large_string(),
}


def arrow_digest(table: str, columns: list[Column], batch: pa.Table) -> str | None:
    """The v2 digest of ``batch`` as DuckDB will store it, computed before the insert, when
    every column's Arrow type stores unchanged (integers into integer columns, microsecond
    timestamps, text into text...); None when one might not (the caller then reads back)."""
    arrays = {}
    for name, kind, _, dtype in columns:
        arrays[name] = _stored_as(batch, name, kind, dtype)
        if arrays[name] is None:
            return None
    hasher = _EntryHash(table, columns)
    hasher.update(pa.table(arrays))
    return hasher.hexdigest()


def _stored_as(batch: pa.Table, name: str, kind: str, dtype: str) -> pa.Array | None:
    canonical = _CANONICAL_TYPES[kind]
    if name not in batch.column_names:
        return pa.nulls(batch.num_rows, canonical)  # INSERT BY NAME stores NULL
    array = one_array(batch.column(name))
    kind_of = array.type
    if pa.types.is_null(kind_of):
        return pa.nulls(batch.num_rows, canonical)
    fits = {
        "int": pa.types.is_integer(kind_of) and dtype in _INTEGERS,
        "float": pa.types.is_floating(kind_of),
        "bool": pa.types.is_boolean(kind_of),
        "text": dtype == "VARCHAR"
        and (
            pa.types.is_string(kind_of)
            or pa.types.is_large_string(kind_of)
            or pa.types.is_string_view(kind_of)
        ),
    }[kind]
    if kind == "int" and dtype.startswith("TIMESTAMP"):
        fits = pa.types.is_timestamp(kind_of) and kind_of.unit == "us"
        return array.cast(pa.int64()) if fits else None
    if kind == "text" and (pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of)):
        return array  # hashed from its offsets and bytes as they are: no copy
    return array.cast(canonical) if fits else None


@dataclass
class _EntryHash:
    """The running column-wise hash of one entry's rows."""

    table: str
    columns: list[Column]
    rows: int = 0
    streams: list[list] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.streams = [[hashlib.sha256() for _ in range(3)] for _ in self.columns]

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows += batch.num_rows
        for (name, kind, *_), streams in zip(self.columns, self.streams, strict=True):
            for stream, part in zip(streams, _column_parts(batch.column(name), kind), strict=True):
                stream.update(part)

    def hexdigest(self) -> str:
        head = f"assay-ledger-v2|{self.table}|{self.rows}"
        cols = "".join(
            f"|{name}:{kind}:" + ":".join(s.hexdigest() for s in streams)
            for (name, kind, *_), streams in zip(self.columns, self.streams, strict=True)
        )
        return V2 + hashlib.sha256((head + cols).encode("utf-8")).hexdigest()


def _column_parts(array: pa.Array, kind: str) -> tuple[bytes, bytes, bytes | np.ndarray]:
    """Validity, values and (text only) UTF-8 bytes of one column slice."""
    array = one_array(array)
    if array.null_count:
        valid = array.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()
    else:
        valid = b"\x01" * len(array)
    if kind == "text":
        _, offsets, data = text_buffers(array)
        return valid, np.diff(offsets).astype(np.int64).tobytes(), data
    filler = {"int": 0, "float": 0.0, "bool": False}[kind]
    values = array.fill_null(filler).to_numpy(zero_copy_only=False)
    if kind == "bool":
        values = values.astype(np.uint8)
    return valid, np.ascontiguousarray(values).tobytes(), b""


def one_array(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one Array: its only chunk as it is (combine_chunks would copy even that)."""
    if not isinstance(array, pa.ChunkedArray):
        return array
    return array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()


def text_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, offsets rebased to 0, UTF-8 bytes) of a text column, nulls as empty text: views
    of the column's own buffers (int32 or int64 offsets, as it holds them), not a copy."""
    array = one_array(array)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if array.null_count:
        array = array.fill_null("")
    width = np.int32 if pa.types.is_string(array.type) else np.int64
    offsets = np.frombuffer(array.buffers()[1], width)[array.offset : array.offset + len(array) + 1]
    buffer = array.buffers()[2]
    data = np.frombuffer(buffer, np.uint8) if buffer else np.zeros(0, np.uint8)
    return valid, offsets - offsets[0], data[offsets[0] : offsets[-1]]


EntryConsumer = Callable[[int, pa.RecordBatch], None]
"""Called with (entry_seq, a slice of that entry's rows), in row_no order."""


def stream_entries(
    con: duckdb.DuckDBPyConnection,
    table: str,
    where: str = "true",
    consumer: EntryConsumer | None = None,
) -> dict[int, tuple[str, int]]:
    """{entry_seq: (v2 digest, rows)} for the table's rows matching ``where``, streamed.

    ``consumer`` sees each entry's rows. Rows out of storage order make the scan restart
    sorted.
    """
    try:
        return _stream(con, table, where, consumer, ordered=False)
    except OutOfOrder:
        if hasattr(consumer, "reset"):
            consumer.reset()  # forget the entry it was in the middle of
        return _stream(con, table, where, consumer, ordered=True)


def _stream(con, table, where, consumer, ordered: bool) -> dict[int, tuple[str, int]]:
    columns = canonical_columns(con, table)
    select = ", ".join(f'{expr} AS "{name}"' for name, _, expr, _ in columns)
    sql = f"SELECT entry_seq AS __seq, {select} FROM {table}"
    sql += f" WHERE {where}" + (" ORDER BY entry_seq, row_no" if ordered else "")
    done: dict[int, tuple[str, int]] = {}
    current: _EntryHash | None = None
    current_seq, last = None, (-1, -1)  # a stored entry_seq < 0 is out of order anyway
    for batch in con.sql(sql).to_arrow_reader(STREAM_ROWS):
        if not batch.num_rows:
            continue
        seqs = batch.column("__seq").to_numpy(zero_copy_only=False)
        rows = batch.column("row_no").fill_null(-1).to_numpy(zero_copy_only=False)
        if not ordered:
            _check_order(seqs, rows, last)
        last = (int(seqs[-1]), int(rows[-1]))
        for start, stop in entry_runs(seqs):
            seq = int(seqs[start])
            if seq != current_seq:
                if current is not None:
                    done[current_seq] = (current.hexdigest(), current.rows)
                current, current_seq = _EntryHash(table, columns), seq
            part = batch.slice(start, stop - start)
            current.update(part)
            if consumer is not None:
                consumer(seq, part)
    if current is not None:
        done[current_seq] = (current.hexdigest(), current.rows)
    return done


def _check_order(seqs: np.ndarray, rows: np.ndarray, last: tuple[int, int]) -> None:
    """(entry_seq, row_no) strictly increasing, across batches too; else OutOfOrder."""
    seq_all = np.concatenate(([last[0]], seqs))
    row_all = np.concatenate(([last[1]], rows))
    dseq, drow = np.diff(seq_all), np.diff(row_all)
    if np.any(dseq < 0) or np.any((dseq == 0) & (drow <= 0)):
        raise OutOfOrder(f"rows not in (entry_seq, row_no) order near entry {int(seqs[0])}")


def entry_runs(seqs: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of one entry_seq in a batch."""
    cuts = np.flatnonzero(np.diff(seqs)) + 1
    return itertools.pairwise([0, *cuts.tolist(), len(seqs)])


def v1_sql(con: duckdb.DuckDBPyConnection, table: str, where: str = "true") -> str:
    """SQL giving (entry_seq, v1 digest) per entry, over every stored column but entry_seq."""
    names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] != "entry_seq"]
    # Length-prefixed fields, so no value can forge a field boundary.
    fields = " || ".join(
        f"coalesce(length(CAST({n} AS VARCHAR)) || ':' || CAST({n} AS VARCHAR), '-') || ';'"
        for n in names
    )
    return (
        f"SELECT entry_seq, sha256('{table}|' || string_agg(sha256({fields}), '' ORDER BY row_no))"
        f" FROM {table} WHERE {where} GROUP BY entry_seq"
    )


def v1_digests(con: duckdb.DuckDBPyConnection, table: str, seqs: list[int]) -> dict[int, str]:
    """v1 digests of the given entries (a ledger written before v2)."""
    if not seqs:
        return {}
    listed = ", ".join(str(int(s)) for s in seqs)
    return dict(con.execute(v1_sql(con, table, f"entry_seq IN ({listed})")).fetchall())
