"""Crash recovery: a run of `assay run` that died (kill -9, power loss) strands nothing.

Each run `assay run` starts is tagged with its process id and that process's start time. The
next run finds every run still marked in progress whose process is gone (or whose pid now
belongs to another process), marks it failed in Dagster, frees the ledger pool's concurrency
slot it held, and records it in the ledger's failed_runs table, so that its partial rows are
ignored by counts, `why` and the gate. A slot held by a live run is waited for, with a deadline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from resources.core.ledger import Ledger

PID_TAG = "assay/pid"
STARTED_TAG = "assay/process_started"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
POOL_TIMEOUT_ENV = "ASSAY_POOL_TIMEOUT"
DEFAULT_POOL_TIMEOUT = 600.0


class PoolTimeout(RuntimeError):
    """The ledger pool stayed held by a live run for longer than the pool timeout."""


def process_started(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after its closing ')' are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def run_tags() -> dict[str, str]:
    """The tags that let a later run tell whether this process is still alive."""
    pid = os.getpid()
    return {PID_TAG: str(pid), STARTED_TAG: process_started(pid) or ""}


def is_dead(run: dg.DagsterRun) -> bool:
    """True for a run `assay run` started whose process no longer exists."""
    pid = run.tags.get(PID_TAG)
    if pid is None:
        return False  # not ours (the UI's runs have the daemon's run monitoring)
    return process_started(int(pid)) != run.tags.get(STARTED_TAG)


def recover(instance: dg.DagsterInstance, ledger: Ledger) -> list[str]:
    """Fail every dead in-progress run, free its slots, record it in failed_runs; their ids."""
    dead = [r for r in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)) if is_dead(r)]
    for run in dead:
        detail = f"process {run.tags[PID_TAG]} is gone; the run never finished"
        instance.report_run_failed(run, message=f"assay: {detail}")
        record_failed(ledger, run.run_id, run.job_name, detail)
    finished = _finished_holders(instance)
    for run_id in {r.run_id for r in dead} | finished:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return [r.run_id for r in dead]


def record_failed(ledger: Ledger, run_id: str, job: str, detail: str) -> None:
    """Mark a run's ledger rows as belonging to a failed run (once per run)."""
    seen = ledger.query("SELECT 1 FROM failed_runs WHERE run_id = ?", [run_id])
    if seen.is_empty():
        ledger.append("failed_runs", [{"job": job, "detail": detail}], run_id)


def _finished_holders(instance: dg.DagsterInstance) -> set[str]:
    """Runs that hold or wait for a slot although Dagster says they are over."""
    holders = instance.event_log_storage.get_concurrency_run_ids()
    over = []
    for run_id in holders:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            over.append(run_id)
    return set(over)


def wait_for_pool(
    instance: dg.DagsterInstance,
    ledger: Ledger,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once no other run holds the ledger pool; recover dead holders; never wait forever."""
    if timeout is None:
        timeout = float(os.environ.get(POOL_TIMEOUT_ENV, DEFAULT_POOL_TIMEOUT))
    deadline = time.monotonic() + timeout
    while True:
        recover(instance, ledger)
        holders = instance.event_log_storage.get_concurrency_run_ids()
        if not holders:
            return
        if time.monotonic() >= deadline:
            raise PoolTimeout(
                f"the ledger pool is held by run(s) {sorted(holders)} for over {timeout:g} s"
            )
        sleep(0.5)
