"""Arrow rows into a ledger table, handed to DuckDB as one chunk per column.

DuckDB inserts an Arrow table in parallel and keeps its order by giving each Arrow chunk row
groups of its own, so a chunk that is not a whole number of row groups (122,880 rows) leaves
a short one behind, and every checkpoint rewrote those. Arrays built in pieces arrive
chunked: polars frames concatenated from parts, or pyarrow's own arrays of many bytes (the
benchmark's record ids came in 2**18-row chunks, and a 1M-row append left three short
groups: 0.4 s of checkpoint after each, 5 s at the automatic one after eight). One chunk per
column leaves only the last group short. This is a matter of speed only: the same rows are
stored in the same order either way.
"""

import duckdb
import pyarrow as pa


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """INSERT ``rows`` into ``table`` by column name, in the current transaction."""
    # Table.combine_chunks copies only the columns of more than one chunk.
    con.register("_rows", rows.combine_chunks())
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")
