"""kill -9 of `assay run` mid-stage: the next run completes and counts what a clean run counts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from resources.core.ledger import Ledger
from tests.conftest import REPO, copy_project

ASSAY = str(Path(sys.executable).with_name("assay"))
RUN_TIMEOUT = 400


def _tiny_project(root: Path, model: dict | None = None) -> Path:
    """Two small sources; ``model`` overrides the train section's model and kwargs."""
    root.mkdir()
    params_path = copy_project(root)
    raw = yaml.safe_load(params_path.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["id"] in ("forum", "scraped")]
    raw["train"] = {**raw["train"], "epochs": 1, "canaries": 1}
    if model:
        raw["train"].update(model)
    params_path.write_text(yaml.safe_dump(raw))
    return params_path


def _env(home: Path) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        "ASSAY_POOL_TIMEOUT": "60",
        "ASSAY_LEDGER_LOCK_TIMEOUT": "60",
    }


def _run(params_path: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ASSAY, "--params", str(params_path), "run"],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=RUN_TIMEOUT,
        cwd=REPO,
    )


def _counts(params_path: Path, home: Path) -> dict:
    done = subprocess.run(
        [ASSAY, "--params", str(params_path), "ledger", "stats", "--json"],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    latest = sorted(
        (r["stage"], r["source_id"], r["records_in"], r["records_out"], r["dropped"])
        for r in stats["latest_stage_counts"]
    )
    return {"latest": latest, "dropped_by_reason": stats["dropped_by_reason"]}


@pytest.mark.e2e
def test_a_run_killed_mid_stage_does_not_block_or_skew_the_next(tmp_path):
    clean = _tiny_project(tmp_path / "clean")
    done = _run(clean, tmp_path / "clean_home")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    marker = tmp_path / "training_started"
    stall = {"model": "tests.e2e.stall_model:build", "model_kwargs": {"marker": str(marker)}}
    crashed = _tiny_project(tmp_path / "crashed", stall)
    home = tmp_path / "crashed_home"
    victim = subprocess.Popen(
        [ASSAY, "--params", str(crashed), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(home),
        cwd=REPO,
        start_new_session=True,
    )
    deadline = time.monotonic() + RUN_TIMEOUT
    while not marker.exists():
        assert victim.poll() is None, "the run ended before its train stage started"
        assert time.monotonic() < deadline, "the train stage never started"
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)  # mid-stage, holding the ledger pool's slot
    victim.wait(timeout=30)

    normal = yaml.safe_load(crashed.read_text())
    normal["train"] = yaml.safe_load(clean.read_text())["train"]
    crashed.write_text(yaml.safe_dump(normal))
    done = _run(crashed, home)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert _counts(crashed, home) == _counts(clean, tmp_path / "clean_home")
    ledger = Ledger(crashed.parent / "data" / "ledger.duckdb")
    failed = ledger.query("SELECT run_id, detail FROM failed_runs")
    assert failed.height == 1 and "is gone" in failed["detail"][0]
    assert ledger.verify().ok
