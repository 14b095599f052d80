import pytest

from resources.core import audit
from resources.core.ledger import Ledger


def _record(record_id: str, key: str) -> dict:
    return {"record_id": record_id, "source_id": "s", "source_key": key, "kind": "text"}


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.append("records", [_record("abcd1" + "0" * 59, "k1")], "good")
    ledger.append("records", [_record("abcd2" + "0" * 59, "k2")], "good")
    counts = {"stage": "ingest", "source_id": "s", "records_in": 2, "records_out": 2}
    ledger.append("stage_counts", [counts | {"dropped": 0}], "good")
    # a run that died mid-way: an orphan record, a count, a drop
    ledger.append("records", [_record("ffff" + "0" * 60, "k3")], "dead")
    ledger.append("stage_counts", [counts | {"records_in": 9, "dropped": 7}], "dead")
    drop = {"stage": "ingest", "source_id": "s", "source_key": "k2", "reason": "empty"}
    ledger.append("drops", [drop], "dead")
    return ledger


def test_rows_of_a_failed_run_are_ignored_by_counts_and_why(ledger):
    ledger.append("failed_runs", [{"job": "ingest_job", "detail": "process 1 is gone"}], "dead")
    latest = audit.latest_counts(ledger)
    assert latest["run_id"].to_list() == ["good"] and latest["records_in"].to_list() == [2]
    assert audit.why(ledger, "k3") == []
    (k2,) = audit.why(ledger, "k2")
    assert k2["drops"] == [] and k2["fate"] == "kept through ingest"
    assert audit.stats(ledger)["failed_runs"] == 1


def test_without_the_failed_mark_the_dead_run_would_count(ledger):
    assert audit.latest_counts(ledger)["run_id"].to_list() == ["dead"]


def test_a_unique_record_id_prefix_resolves_and_an_ambiguous_one_is_refused(ledger):
    assert audit.resolve_record_id(ledger, "abcd1") == "abcd1" + "0" * 59
    with pytest.raises(audit.AmbiguousKey, match="prefix of several"):
        audit.resolve_record_id(ledger, "abcd")
    assert audit.resolve_record_id(ledger, "k1") == "k1"  # not hex: a source key


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "DROP TABLE records",
        "COPY records TO 'out.csv'",
        "PRAGMA version",
        "CALL pragma_version()",
    ],
)
def test_user_sql_is_one_select_only(ledger, sql):
    with pytest.raises(audit.UnsafeQuery):
        audit.user_sql(ledger, sql)


def test_user_sql_reads_the_ledger(ledger):
    assert audit.user_sql(ledger, "SELECT count(*) AS n FROM records")["n"].item() == 3


# -- the lookup path answers exactly what the scan answers ---------------------------------


def _hex(rng, n: int = 64) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), n))


@pytest.fixture
def busy(tmp_path):
    """Records and drops in several entries: shared 8-char prefixes (one k, many ids), one
    text in two sources, drops without a record_id, a key stored hashed, a failed run."""
    import numpy as np

    from resources.scrub.keys import hashed_key

    rng = np.random.default_rng(5)
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ids = [_hex(rng) for _ in range(300)]
    ids += ["deadbeef" + _hex(rng, 56) for _ in range(3)]  # same k, different ids
    for batch, source in ((ids[:150], "a"), (ids[150:], "b"), (ids[:20], "c")):
        rows = [
            _record(i, f"{source}-{n % 40}.jsonl:{n}") | {"source_id": source}
            for n, i in enumerate(batch)
        ]
        ledger.append("records", rows, "good")
    ledger.append("records", [_record(_hex(rng), hashed_key("alice@example.com"))], "good")
    drops = [
        {"stage": "ingest", "source_id": "a", "source_key": "a-bad.jsonl:1", "reason": "empty"},
        {"stage": "dedup", "record_id": ids[3], "source_id": "a", "source_key": "a-3.jsonl:3"}
        | {"reason": "duplicate_exact"},
    ]
    ledger.append("drops", drops, "good")
    ledger.append("records", [_record(ids[5], "dead.jsonl:1")], "dead")
    ledger.append("failed_runs", [{"job": "j", "detail": "gone"}], "dead")
    for source in ("a", "b", "c"):
        counts = {"stage": "ingest", "source_id": source, "records_in": 1, "records_out": 1}
        ledger.append("stage_counts", [counts | {"dropped": 0}], "good")
    return ledger, ids


def _without_lookups(ledger: Ledger, tmp_path) -> Ledger:
    """A copy with the lookup tables dropped: why falls back to the scan queries."""
    import shutil

    import duckdb

    copy = tmp_path / "scan.duckdb"
    shutil.copy(ledger.path, copy)
    con = duckdb.connect(str(copy))
    con.execute("DROP TABLE lookup_record_id")
    con.execute("DROP TABLE lookup_source_key")
    con.close()
    return Ledger(copy)


def _answer(reader, key: str):
    try:
        return audit.why(reader, key)
    except audit.AmbiguousKey as err:
        return f"ambiguous: {err}"


def test_why_through_the_lookups_equals_the_scan(busy, tmp_path):
    ledger, ids = busy
    scan = _without_lookups(ledger, tmp_path)
    keys = [*ids[::7], ids[-1], ids[3][:6], ids[40][:10], ids[150][:20], "deadbeef", "deadbeef0"]
    keys += [
        "a-3.jsonl:3",
        "b-0.jsonl:0",
        "a-bad.jsonl:1",
        "dead.jsonl:1",
        "nothing",
        "alice@example.com",
    ]
    keys += [ids[5], "ffffffff" * 8, "0000"]
    with ledger.reader() as fast, scan.reader() as slow:
        assert {"lookup_record_id", "lookup_source_key"} <= fast.tables()
        assert not {"lookup_record_id", "lookup_source_key"} & slow.tables()
        answers = [(_answer(fast, k), _answer(slow, k)) for k in keys]
    for key, (fast_answer, slow_answer) in zip(keys, answers, strict=True):
        assert fast_answer == slow_answer, key
    # the comparison is not of empty lists: all but these are found
    empty = {k for k, (a, _) in zip(keys, answers, strict=True) if a == []}
    assert {"dead.jsonl:1", "nothing", "ffffffff" * 8} <= empty
    assert empty <= {"dead.jsonl:1", "nothing", "ffffffff" * 8, "0000", "deadbeef0"}
    ambiguous = {k for k, (a, _) in zip(keys, answers, strict=True) if isinstance(a, str)}
    assert "deadbeef" in ambiguous and ambiguous <= {"deadbeef", "deadbeef0"}


def test_why_by_a_stored_hashed_key_and_across_sources(busy):
    ledger, ids = busy
    (pii,) = audit.why(ledger, "alice@example.com")
    assert pii["source_key"].startswith("pii-key:")
    both = audit.why(ledger, ids[3])
    assert {o["source_id"] for o in both} == {"a", "c"}
    assert [d["reason"] for d in both[0]["drops"]] == ["duplicate_exact"]
