"""Arrow rows into a ledger table, handed to DuckDB in whole row groups.

DuckDB inserts an Arrow table in parallel and keeps its order by giving each piece it scans
row groups of its own. Its scan cuts a table into pieces of 2**18 rows, which is not a whole
number of row groups, so each piece left a short one behind, and every checkpoint rewrote
those (measured at 1M-row appends: 0.4 s a checkpoint after each, 5 s at the automatic one
after eight). Pieces of exactly two row groups, each in buffers of its own (a slice is
still scanned in 2**18-row pieces of its parent), leave only the last group short. This is a
matter of speed only: any split stores the same rows in the same order.
"""

import duckdb
import pyarrow as pa

ROW_GROUP_ROWS = 122_880
"""DuckDB's default rows per row group."""
PIECE_ROWS = 2 * ROW_GROUP_ROWS
"""The most whole row groups that fit in one 2**18-row piece of DuckDB's Arrow scan."""


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """INSERT ``rows`` into ``table`` by column name, in the current transaction."""
    con.register("_rows", in_row_groups(rows))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def in_row_groups(rows: pa.Table) -> pa.Table:
    """``rows`` as chunks of PIECE_ROWS rows (the last may be shorter), each column of each a
    copy with its own buffers, unless ``rows`` is one such chunk already."""
    if rows.num_rows <= PIECE_ROWS and all(c.num_chunks == 1 for c in rows.columns):
        return rows
    pieces = (rows.slice(s, PIECE_ROWS) for s in range(0, rows.num_rows, PIECE_ROWS))
    return pa.Table.from_batches(
        # ChunkedArray.combine_chunks copies even a single chunk (Table.combine_chunks doesn't)
        [pa.record_batch([c.combine_chunks() for c in p.columns], schema=p.schema) for p in pieces],
        rows.schema,
    )
