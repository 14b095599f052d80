import os

import dagster as dg
import pytest

from pipelines.recovery import PID_TAG, STARTED_TAG, PoolTimeout, is_dead, run_tags, wait_for_pool
from resources.core.ledger import Ledger


def _run(tags: dict[str, str]) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="ingest_job", tags=tags)


def test_a_run_is_dead_when_its_process_is_gone_or_its_pid_was_reused():
    assert not is_dead(_run(run_tags()))  # this very process
    assert is_dead(_run({PID_TAG: "999999999", STARTED_TAG: "1"}))
    assert is_dead(_run({**run_tags(), STARTED_TAG: "0"}))  # same pid, another process
    assert not is_dead(_run({}))  # not started by `assay run`: left to Dagster's monitoring
    assert run_tags()[PID_TAG] == str(os.getpid())


class _Storage:
    def __init__(self, holders: set[str]) -> None:
        self.holders = holders

    def get_concurrency_run_ids(self) -> set[str]:
        return self.holders

    def free_concurrency_slots_for_run(self, run_id: str) -> None:
        self.holders.discard(run_id)


class _Instance:
    """A live run holds the pool: only the deadline can end the wait."""

    def __init__(self) -> None:
        self.event_log_storage = _Storage({"live-run"})

    def get_runs(self, filters: dg.RunsFilter) -> list[dg.DagsterRun]:
        return [_run(run_tags())]

    def get_run_by_id(self, run_id: str) -> dg.DagsterRun:
        return _run(run_tags())


def test_waiting_for_a_live_holder_has_a_deadline(tmp_path):
    with pytest.raises(PoolTimeout, match="live-run"):
        wait_for_pool(_Instance(), Ledger(tmp_path / "l.duckdb"), timeout=0.2, sleep=lambda _: None)
