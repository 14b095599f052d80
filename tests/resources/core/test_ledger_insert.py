import duckdb
import numpy as np
import pyarrow as pa

from resources.core.ledger import Ledger
from resources.core.ledger_insert import insert_arrow

ROW_GROUP_ROWS = 122_880
"""DuckDB's default rows per row group."""
ROWS = 4 * ROW_GROUP_ROWS + 1000


def _chunked_rows(n: int, offset: int) -> pa.Table:
    """Rows in chunks of 2**18, as pyarrow builds a large array of bytes: no chunk a whole
    number of row groups."""
    index = np.arange(offset, offset + n)
    table = pa.table({"n": pa.array(index), "text": pa.array([f"row-{i}" for i in index])})
    return pa.Table.from_batches(table.to_batches(max_chunksize=1 << 18))


def _row_group_sizes(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [
        r[0]
        for r in con.execute(
            "SELECT sum(count) FROM pragma_storage_info('t') WHERE column_name = 'n'"
            " AND segment_type <> 'VALIDITY' GROUP BY row_group_id ORDER BY row_group_id"
        ).fetchall()
    ]


def test_chunked_rows_are_stored_in_order_in_full_row_groups_but_each_appends_last(tmp_path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (n BIGINT, text VARCHAR)")
    for start in (0, ROWS):
        rows = _chunked_rows(ROWS, start)
        assert rows.column("n").num_chunks > 1
        con.begin()
        insert_arrow(con, "t", rows)
        con.commit()
        sizes = _row_group_sizes(con)
        # every group full but the last of each append (short groups: a chunk's tail each)
        assert all(size == ROW_GROUP_ROWS for size in sizes[:-1] if size != 1000), sizes
    con.execute("CHECKPOINT")
    sizes = _row_group_sizes(con)
    assert sum(sizes) == 2 * ROWS
    assert sorted(sizes)[:2] == [1000, 1000] and set(sorted(sizes)[2:]) == {ROW_GROUP_ROWS}
    assert con.execute("SELECT n FROM t").fetchnumpy()["n"].tolist() == list(range(2 * ROWS))


def test_the_ledger_stores_record_ids_uncompressed(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ids = [f"{i:064x}" for i in range(5000)]
    ledger.append("records", [{"record_id": r, "source_id": "s"} for r in ids], "run")
    codecs = ledger.query(  # closing the writer checkpointed: the rows are in storage
        "SELECT DISTINCT compression FROM pragma_storage_info('records')"
        " WHERE column_name = 'record_id' AND segment_type = 'VARCHAR'"
    )["compression"].to_list()
    assert codecs == ["Uncompressed"]
    assert ledger.query("SELECT record_id FROM records")["record_id"].to_list() == ids
