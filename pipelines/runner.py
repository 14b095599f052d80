"""`assay run`: materialize in-process against a persistent instance, with progress and summary.

Runs go into the same Dagster instance (``.dagster_home``) that `assay ui` shows, so a run from
the command line appears in the UI's history.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.jobs import INGEST, RESCREEN
from pipelines.output import print_frame
from pipelines.params import load_params
from pipelines.recovery import record_failed, run_tags, wait_for_pool
from resources.core import audit
from resources.core.ledger import Ledger

# Dagster's per-event DEBUG lines would bury the summary; the UI keeps the full event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

DAGSTER_YAML = """\
# Written by assay. Nothing phones home; ledger writers share one concurrency slot.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def dagster_home(params_file: str | Path) -> Path:
    """The instance directory: $DAGSTER_HOME, else .dagster_home beside params.yaml."""
    default = Path(params_file).resolve().parent / ".dagster_home"
    home = Path(os.environ.get("DAGSTER_HOME") or default)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def run_pipeline(params_file: str, selection: list[str] | None, console: Console) -> bool:
    """Ingest every source (one run each), then every later stage in one run; True if all ok."""
    from pipelines.definitions import build_defs

    os.environ["DAGSTER_HOME"] = str(dagster_home(params_file))
    params = load_params(params_file)
    defs = build_defs(params_file)
    names = [key.to_user_string() for key in defs.resolve_all_asset_keys()]
    # The chain by default; rescreen (a job of its own) only when selected.
    selected = selection or [n for n in names if n != RESCREEN]
    unknown = sorted(set(selected) - set(names))
    if unknown:
        raise ValueError(f"unknown asset(s) {unknown}; known: {names}")
    steps = [(INGEST, s) for s in params.source_ids] if INGEST in selected else []
    downstream = [n for n in names if n in selected and n not in (INGEST, RESCREEN)]
    instance = dg.DagsterInstance.get()
    ledger = Ledger(params.ledger_path)
    failures = _execute(defs, steps, downstream, instance, ledger, console)
    if RESCREEN in selected and not failures:
        failures += _rescreen(defs, instance)
    order = [k.to_user_string() for k in defs.resolve_asset_graph().toposorted_asset_keys]
    print_summary(ledger, console, order)
    for failure in failures:
        console.print(f"[red]failed[/] {failure}", soft_wrap=True)
    return not failures


def _execute(
    defs: dg.Definitions,
    steps: list[tuple[str, str]],
    downstream: list[str],
    instance: dg.DagsterInstance,
    ledger: Ledger,
    console: Console,
) -> list[str]:
    """Run each ingest partition, then the rest; a failed run's ledger rows are marked failed."""
    failures: list[str] = []

    def execute(job_name: str, **kwargs: object) -> dg.ExecuteInProcessResult:
        wait_for_pool(instance, ledger)
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET, tags=run_tags(), **kwargs
        )
        if not result.success:
            record_failed(ledger, result.run_id, job_name, _failure_message(result))
        return result

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("assay run", total=len(steps) + bool(downstream))
        for _, source_id in steps:
            progress.update(task, description=f"ingest {source_id}")
            result = execute("ingest_job", partition_key=source_id)
            if not result.success:
                failures.append(f"ingest {source_id}: {_failure_message(result)}")
            progress.advance(task)
        if downstream and not failures:
            progress.update(task, description=", ".join(downstream))
            result = execute("curate_job", asset_selection=[dg.AssetKey(n) for n in downstream])
            if not result.success:
                failures.append(f"{', '.join(downstream)}: {_failure_message(result)}")
            progress.advance(task)
        progress.update(task, description="assay run: done" if not failures else "assay run")
    return failures


def _rescreen(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    result = defs.resolve_job_def("rescreen_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )
    return [] if result.success else [f"rescreen: {_failure_message(result)}"]


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            cause = error.cause or error
            return f"{event.step_key}: {cause.message.strip()}"
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                return f"check {evaluation.check_name} failed on {evaluation.asset_key}"
    return "run failed"


def summary_frame(ledger: Ledger, stage_order: Sequence[str] = ()) -> pl.DataFrame:
    """One row per source: items read, records out of each stage (in ``stage_order``, then any
    other stage in the order first recorded), drops by reason."""
    counts = audit.latest_counts(ledger)
    if counts.is_empty():
        return pl.DataFrame()
    recorded = list(dict.fromkeys(counts.sort("recorded_at")["stage"]))
    stages = [s for s in stage_order if s in recorded] + [
        s for s in recorded if s not in stage_order
    ]
    out = (
        counts.filter(pl.col("stage") == INGEST)
        .select("source_id", pl.col("records_in").alias("read"))
        .join(
            counts.pivot(on="stage", index="source_id", values="records_out"),
            on="source_id",
            how="full",
            coalesce=True,
        )
        .select("source_id", "read", *stages)
    )
    reasons = audit.latest_drop_reasons(ledger)
    dropped = (
        reasons.with_columns(pl.format("{} {}", "reason", "n").alias("why"))
        .group_by("source_id", maintain_order=True)
        .agg(pl.col("why").str.join(", ").alias("dropped (reason count)"))
    )
    return out.join(dropped, on="source_id", how="left").sort("source_id").fill_null("")


def print_summary(ledger: Ledger, console: Console, stage_order: Sequence[str] = ()) -> None:
    frame = summary_frame(ledger, stage_order)
    if frame.is_empty():
        console.print("nothing in the ledger yet")
        return
    print_frame(frame, "records per source: read, out of each stage, and dropped")
    trained = audit.latest_training(ledger)
    if trained:
        console.print(
            f"train: {trained['train_records']} records, epsilon {trained['epsilon']:.3f}"
            f" (target {trained['target_epsilon']}, delta {trained['delta']:g}),"
            f" model {os.path.relpath(trained['path'])} sha256 {trained['model_sha256'][:16]}…",
            soft_wrap=True,
        )
    released = ledger.query(
        "SELECT release_id, status, path FROM releases ORDER BY entry_seq DESC LIMIT 1"
    )
    if released.height:
        row = released.row(0, named=True)
        where = os.path.relpath(row["path"])
        console.print(f"release: {row['status']} {row['release_id']} ({where})", soft_wrap=True)
