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


# -- signed checkpoints --------------------------------------------------------------------


def _rewrite_chain(ledger: Ledger) -> None:
    """What someone who can edit the file can do: recompute every digest and entry_hash."""
    from resources.core.ledger import GENESIS, _build_lookups, _entry_hash
    from resources.core.ledger_digest import stream_entries

    con = duckdb.connect(str(ledger.path))
    prev = GENESIS
    for seq, table in con.execute("SELECT seq, tbl FROM chain ORDER BY seq").fetchall():
        digest = stream_entries(con, table, f"entry_seq = {seq}")[seq][0]
        entry_hash = _entry_hash(prev, digest)
        con.execute(
            "UPDATE chain SET batch_digest = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            [digest, prev, entry_hash, seq],
        )
        prev = entry_hash
    _build_lookups(con)  # the derived lookup tables too
    con.close()


@pytest.fixture
def signer():
    from resources.core.signing import Signer

    return Signer.generate()


@pytest.fixture
def checkpointed(ledger, signer) -> Ledger:
    """The ledger with its head signed (entry 3), then one more append after it."""
    ledger.checkpoint(signer, "test")
    ledger.append("records", _records(5, source="t"), run_id="r2")
    return ledger


def test_checkpoints_hold_on_an_untouched_ledger(checkpointed, signer):
    result = checkpointed.verify(signer.fingerprint)
    assert result.ok and result.checkpoints == 1 and result.entries == 5
    assert checkpointed.checkpoint_log.read_text().count("\n") == 1


def test_a_consistent_rewrite_before_a_checkpoint_is_named(checkpointed):
    _sql(checkpointed, "UPDATE records SET source_key = 'x' WHERE entry_seq = 2 AND row_no = 7")
    assert not checkpointed.verify().ok  # the plain chain catches a naive edit
    _rewrite_chain(checkpointed)
    assert checkpointed._walk_chain().ok  # ...but not a consistent rewrite
    result = checkpointed.verify()
    assert not result.ok and result.first_bad == 3
    assert "rewritten" in result.problem and "entry 3" in result.problem


def test_a_rewrite_that_also_drops_the_checkpoint_rows_is_caught_by_the_log(checkpointed):
    _sql(checkpointed, "UPDATE records SET source_key = 'x' WHERE entry_seq = 2 AND row_no = 7")
    _sql(checkpointed, "DELETE FROM checkpoints")
    _sql(checkpointed, "DELETE FROM chain WHERE tbl = 'checkpoints'")
    _sql(checkpointed, "UPDATE chain SET seq = seq - 1 WHERE seq > 4")
    _sql(checkpointed, "UPDATE records SET entry_seq = entry_seq - 1 WHERE entry_seq > 4")
    _rewrite_chain(checkpointed)
    assert checkpointed._walk_chain().ok
    result = checkpointed.verify()
    assert not result.ok and "rewritten" in result.problem


def test_a_truncation_is_named(checkpointed):
    _sql(checkpointed, "DELETE FROM records WHERE entry_seq >= 2")
    _sql(checkpointed, "DELETE FROM drops")
    _sql(checkpointed, "DELETE FROM checkpoints")
    _sql(checkpointed, "DELETE FROM chain WHERE seq >= 2")
    for lookup in ("lookup_record_id", "lookup_source_key"):  # derived: truncated alike
        _sql(checkpointed, f"DELETE FROM {lookup} WHERE entry_seq >= 2")
    assert checkpointed._walk_chain().ok  # a shorter chain is still a valid chain
    result = checkpointed.verify()
    assert not result.ok and result.first_bad == 3
    assert "truncated to 1 entries" in result.problem


def test_a_checkpoint_re_signed_by_another_key_is_refused(checkpointed, signer):
    from resources.core.signing import Signer

    intruder = Signer.generate()
    checkpointed.checkpoint(intruder, "forged")
    assert checkpointed.verify().ok  # each signature holds for its own key...
    result = checkpointed.verify(signer.fingerprint)  # ...but only one key is trusted
    assert not result.ok and "not the trusted key" in result.problem


def test_an_altered_checkpoint_fails_its_signature(checkpointed):
    _sql(checkpointed, "UPDATE checkpoints SET entry_hash = repeat('a', 64)")
    checkpointed.checkpoint_log.unlink()
    _rewrite_chain(checkpointed)
    result = checkpointed.verify()
    assert not result.ok and "signature does not verify" in result.problem


# -- incremental verify, lookups, format v2 --------------------------------------------------


def test_incremental_verify_rereads_only_what_came_after_the_checkpoint(checkpointed, signer):
    full = checkpointed.verify(signer.fingerprint)
    since = checkpointed.verify(signer.fingerprint, since_checkpoint=True)
    assert full.ok and since.ok
    assert full.since == 0 and since.since == 3  # signed head: entry 3
    assert since.rows_checked == 1 + 5 < full.rows_checked  # the checkpoint row, 5 records


def test_incremental_verify_detects_an_edit_after_the_last_checkpoint(checkpointed):
    _sql(checkpointed, "UPDATE records SET kind = 'image' WHERE entry_seq = 5 AND row_no = 2")
    result = checkpointed.verify(since_checkpoint=True)
    assert not result.ok and result.first_bad == 5 and "digest" in result.problem


def test_an_edit_before_the_checkpoint_needs_the_full_verify(checkpointed):
    _sql(checkpointed, "UPDATE records SET kind = 'image' WHERE entry_seq = 2 AND row_no = 2")
    assert checkpointed.verify(since_checkpoint=True).ok  # what incremental means
    result = checkpointed.verify()
    assert not result.ok and result.first_bad == 2


def test_incremental_verify_still_counts_every_table(checkpointed):
    _sql(checkpointed, "DELETE FROM records WHERE entry_seq = 2 AND row_no = 9")
    result = checkpointed.verify(since_checkpoint=True)
    assert not result.ok and "holds 54 rows but its entries claim 55" in result.problem


def test_without_a_checkpoint_incremental_is_a_full_verify(ledger):
    result = ledger.verify(since_checkpoint=True)
    assert result.ok and result.since == 0 and result.rows_checked == 52


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM lookup_record_id WHERE row_no = 4",
        "UPDATE lookup_source_key SET k = k + 1 WHERE row_no = 4",
        "UPDATE lookup_record_id SET row_no = 5 WHERE row_no = 4",
        "INSERT INTO lookup_source_key SELECT * FROM lookup_source_key LIMIT 1",
    ],
)
def test_a_tampered_lookup_is_named_and_rebuilt(ledger, statement):
    _sql(ledger, statement)
    result = ledger.verify()
    assert not result.ok and result.first_bad == 2 and "lookup_" in result.problem
    ledger.rebuild_lookups()
    assert ledger.verify().ok


def test_a_batch_over_the_entry_limit_becomes_several_entries(tmp_path, monkeypatch):
    import resources.core.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "MAX_ENTRY_ROWS", 16)
    ledger = Ledger(tmp_path / "ledger.duckdb")
    assert ledger.append("records", _records(40)) == 3
    assert ledger.query("SELECT n_rows FROM chain ORDER BY seq")["n_rows"].to_list() == [16, 16, 8]
    assert ledger.verify().ok


def test_a_column_duckdb_converts_is_hashed_as_stored(tmp_path):
    """Text into a timestamp, a float into BIGINT: the digest is read back, not guessed."""
    ledger = Ledger(tmp_path / "ledger.duckdb")
    source = {"source_id": "s", "retrieved_at": "2026-01-15T09:00:00Z", "files": 2.0}
    ledger.append("sources", [source])
    ledger.append("records", _records(3).with_columns(pl.col("size_bytes").cast(pl.Float64)))
    assert ledger.verify().ok
    _sql(ledger, "UPDATE sources SET files = 3")
    assert ledger.verify().first_bad == 1


def test_the_digest_does_not_depend_on_how_rows_are_streamed(ledger, monkeypatch):
    import resources.core.ledger_digest as digest_module

    chain = ledger.query("SELECT seq, batch_digest FROM chain WHERE tbl = 'records'")
    monkeypatch.setattr(digest_module, "STREAM_ROWS", 7)
    con = duckdb.connect(str(ledger.path), read_only=True)
    streamed = digest_module.stream_entries(con, "records")
    con.close()
    assert {seq: d for seq, (d, _) in streamed.items()} == dict(chain.iter_rows())


def _as_v1(ledger: Ledger) -> None:
    """The ledger as the code before format v2 wrote it: v1 digests, no lookup tables."""
    from resources.core.ledger import GENESIS, _entry_hash
    from resources.core.ledger_digest import v1_sql

    con = duckdb.connect(str(ledger.path))
    con.execute("DROP TABLE lookup_record_id")
    con.execute("DROP TABLE lookup_source_key")
    prev = GENESIS
    for seq, table in con.execute("SELECT seq, tbl FROM chain ORDER BY seq").fetchall():
        digest = con.execute(v1_sql(con, table, f"entry_seq = {seq}")).fetchall()[0][1]
        entry_hash = _entry_hash(prev, digest)
        con.execute(
            "UPDATE chain SET batch_digest = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            [digest, prev, entry_hash, seq],
        )
        prev = entry_hash
    con.close()


def test_a_v1_ledger_still_verifies_and_gains_lookups_on_its_next_write(ledger):
    from resources.core import audit

    _as_v1(ledger)
    assert ledger.verify().ok
    assert audit.why(ledger, "s00000007")[0]["source_key"] == "f.jsonl:7"  # by scan
    ledger.append("records", _records(2, source="t"), run_id="r2")
    digests = ledger.query("SELECT batch_digest FROM chain ORDER BY seq")["batch_digest"]
    assert [d.startswith("v2:") for d in digests] == [False, False, False, True]
    assert ledger.verify().ok
    assert ledger.query("SELECT count(*) FROM lookup_record_id").item() == 52
    _sql(ledger, "UPDATE records SET kind = 'image' WHERE entry_seq = 2 AND row_no = 1")
    assert ledger.verify().first_bad == 2  # a v1 entry's rows are still checked
