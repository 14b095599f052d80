import duckdb
import numpy as np
import pyarrow as pa

from resources.core.ledger import Ledger
from resources.core.ledger_insert import PIECE_ROWS, ROW_GROUP_ROWS, in_row_groups, insert_arrow

ROWS = 2 * PIECE_ROWS + 1000


def _rows(n: int, offset: int = 0) -> pa.Table:
    index = np.arange(offset, offset + n)
    return pa.table({"n": pa.array(index), "text": pa.array([f"row-{i}" for i in index])})


def _row_group_sizes(con: duckdb.DuckDBPyConnection, table: str) -> list[int]:
    return [
        r[0]
        for r in con.execute(
            "SELECT max(count) FROM pragma_storage_info(?) WHERE column_name = 'n'"
            " AND segment_type <> 'VALIDITY' GROUP BY row_group_id ORDER BY row_group_id",
            [table],
        ).fetchall()
    ]


def test_pieces_are_whole_row_groups_in_buffers_of_their_own():
    parent = _rows(ROWS + 500)
    rows = parent.slice(500)  # a slice: its buffers start before its first row
    pieces = in_row_groups(rows)
    assert pieces.equals(rows)
    chunks = pieces.column("n").chunks
    assert [len(c) for c in chunks] == [PIECE_ROWS, PIECE_ROWS, 1000]
    assert all(c.offset == 0 for c in chunks)
    assert in_row_groups(pieces.slice(0, 10)).column("n").num_chunks == 1


def test_an_insert_stores_every_row_in_order_and_leaves_only_the_last_row_group_short(
    tmp_path,
):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (n BIGINT, text VARCHAR)")
    for start in (0, ROWS):
        con.begin()
        insert_arrow(con, "t", _rows(ROWS, start))
        con.commit()
    con.execute("CHECKPOINT")
    assert con.execute("SELECT n FROM t").fetchnumpy()["n"].tolist() == list(range(2 * ROWS))
    sizes = _row_group_sizes(con, "t")
    assert sum(sizes) == 2 * ROWS
    # per append: whole groups, then its one short tail (no 2**18-row piece left a short one)
    per_append = ROWS // ROW_GROUP_ROWS + 1
    assert sizes == ([ROW_GROUP_ROWS] * (per_append - 1) + [ROWS % ROW_GROUP_ROWS]) * 2


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
