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
