import multiprocessing

import duckdb
import polars as pl
import pytest

from resources.core.ledger import Ledger, LedgerError, evidence


def _records(n: int, source: str = "s") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "record_id": [f"{source}{i:08d}" for i in range(n)],
            "source_id": source,
            "source_key": [f"f.jsonl:{i}" for i in range(n)],
            "kind": "text",
            "size_bytes": 10,
        }
    )


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.append("runs", [{"run_id": "r1", "job": "j", "code_version": "1", "params_digest": "d"}])
    ledger.append("records", _records(50), run_id="r1")
    drop = {"stage": "ingest", "record_id": None, "source_id": "s", "source_key": "f.jsonl:99"}
    drop |= {"reason": "malformed", "evidence": evidence(detail="bad")}
    ledger.append("drops", [drop], run_id="r1")
    return ledger


def _sql(ledger: Ledger, statement: str) -> None:
    con = duckdb.connect(str(ledger.path))
    con.execute(statement)
    con.close()


def test_untouched_ledger_verifies(ledger):
    result = ledger.verify()
    assert result.ok and result.entries == 3


def test_appends_extend_the_chain(ledger):
    chain = ledger.query("SELECT seq, prev_hash, entry_hash FROM chain ORDER BY seq")
    assert chain["seq"].to_list() == [1, 2, 3]
    assert chain["prev_hash"].to_list()[1:] == chain["entry_hash"].to_list()[:-1]


@pytest.mark.parametrize(
    ("statement", "bad_entry"),
    [
        ("UPDATE records SET source_key = 'x' WHERE row_no = 7", 2),
        ("DELETE FROM records WHERE row_no = 3", 2),
        ("INSERT INTO records SELECT * REPLACE (row_no + 100 AS row_no) FROM records LIMIT 1", 2),
        ("UPDATE drops SET reason = 'empty'", 3),
        ("UPDATE runs SET params_digest = 'other'", 1),
        ("DELETE FROM chain WHERE seq = 3", 3),
        ("UPDATE chain SET batch_digest = repeat('0', 64) WHERE seq = 2", 2),
        ("INSERT INTO records SELECT * REPLACE (99 AS entry_seq) FROM records LIMIT 1", 99),
    ],
)
def test_any_tampered_row_names_the_first_bad_entry(ledger, statement, bad_entry):
    _sql(ledger, statement)
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad == bad_entry
    assert result.problem


def test_unknown_table_and_column_are_refused(ledger):
    with pytest.raises(LedgerError, match="unknown ledger table"):
        ledger.append("nope", [{"a": 1}])
    with pytest.raises(LedgerError, match="no column"):
        ledger.append("runs", [{"run_id": "r", "secret": "x"}])


def test_record_stage_refuses_lost_records(ledger):
    records = pl.DataFrame({"record_id": ["a", "b", "c"], "source_id": "s", "source_key": "k"})
    kept = records.head(1)
    drops = records.slice(1, 1).with_columns(
        pl.lit("duplicate_exact").alias("reason"), pl.lit(None, pl.String).alias("evidence")
    )
    with pytest.raises(LedgerError, match="lost without a reason"):
        ledger.record_stage("dedup", "r2", records, kept, drops)
    assert ledger.query("SELECT count(*) FROM stage_counts WHERE run_id = 'r2'").item() == 0
    counts = ledger.record_stage("dedup", "r2", records.head(2), kept, drops)
    assert counts.row(0, named=True) | {} == {
        "stage": "dedup",
        "source_id": "s",
        "records_in": 2,
        "records_out": 1,
        "dropped": 1,
    }


def _append_many(path: str, source: str) -> None:
    ledger = Ledger(path)
    for _ in range(15):
        ledger.append("records", _records(200, source), run_id=source)


def test_two_writers_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "ledger.duckdb")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(path, s)) for s in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    ledger = Ledger(path)
    assert ledger.query("SELECT count(*) FROM records").item() == 2 * 15 * 200
    assert ledger.verify().ok


def test_export_writes_every_table(ledger, tmp_path):
    paths = ledger.export(tmp_path / "export")
    names = {p.stem for p in paths}
    assert {"chain", "records", "drops", "sources", "runs"} <= names
    assert pl.read_parquet(tmp_path / "export" / "records.parquet").height == 50


def test_an_empty_batch_appends_nothing(ledger):
    assert ledger.append("records", _records(0)) is None
    assert ledger.verify().entries == 3
