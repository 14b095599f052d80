"""dvc.yaml: one `assay run --select` stage per asset, and `dvc repro` works in a fresh checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.definitions import build_defs
from pipelines.params import Params
from resources.core.ledger import Ledger
from resources.release.keys import init_key

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
PROJECT_FILES = ("dvc.yaml", "params.yaml", "workspace.yaml", ".dvcignore", ".dvc/config")
PACKAGES = ("assets", "pipelines", "resources", "sensors")


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def out_paths(stage: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]


def test_every_asset_has_a_stage_that_runs_it():
    stages = dvc_stages()
    assets = [k.to_user_string() for k in build_defs(REPO / "params.yaml").resolve_all_asset_keys()]
    # rescreen is no stage: it rewrites the stages' outs in place, which DVC cannot model (one
    # producer per out). Under `dvc repro` a list change re-runs ingest (data/hashlists is its
    # dep), whose door screening leaves the listed record out of everything after it.
    assets = [a for a in assets if a != "rescreen"]
    assert "ingest" in assets and "data/hashlists" in stages["ingest"]["deps"]
    sections = set(Params.model_fields) - {"root"}
    for asset in assets:
        stage = stages[asset]
        assert stage["cmd"] == f"assay run --select {asset}"
        assert set(stage["params"]) <= sections, stage["params"]
        assert out_paths(stage) and all(p.startswith("data/") for p in out_paths(stage))
    # The ledger is every stage's log, so no stage declares it as an out (see dvc.yaml).
    produced = [p for stage in stages.values() for p in out_paths(stage)]
    assert "data/ledger.duckdb" not in produced
    assert len(produced) == len(set(produced))
    # The ledger stage runs last: it depends on every asset stage's outs.
    ledger_deps = set(stages["ledger"]["deps"])
    for asset in assets:
        assert set(out_paths(stages[asset])) <= ledger_deps


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What a clone holds: code, project files, the sample corpus and .dvc/config, in git."""
    root = tmp_path / "checkout"
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for folder in ("raw", "hashlists"):
        shutil.copytree(REPO / "data" / folder, root / "data" / folder, symlinks=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    init_key(root / ".assay" / "keys" / "release.pem")  # as `make run` does first
    # The NER model cache, as `make model` leaves it: without it the scrub stage builds one.
    shutil.copytree(REPO / "data" / "models", root / "data" / "models")
    return root


def dvc(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        # `assay` from this venv, importing the checkout's own packages.
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "PYTHONPATH": str(checkout),
        "DAGSTER_HOME": str(checkout.parent / "dagster_home"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "1",
        "DVC_SITE_CACHE_DIR": str(checkout.parent / "dvc_site_cache"),
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }
    return subprocess.run(
        [str(DVC), *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
    )


def test_dvc_reads_the_real_params_and_deps(checkout: Path):
    """On the real params.yaml and sample: dvc parses dvc.yaml, reads the params sections (it
    rejects YAML timestamps) and hashes the deps (it fails on a dangling symlink)."""
    dry = dvc(checkout, "repro", "--dry", "ingest")
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert "> assay run --select ingest" in dry.stdout


def keep_sources(params_file: Path, ids: set[str]) -> None:
    """Trim params.yaml to a few sources (a faster run), keeping timestamps quoted for DVC."""
    params = yaml.safe_load(params_file.read_text())
    params["sources"] = [
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in source.items()}
        for source in params["sources"]
        if source["id"] in ids
    ]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.e2e
def test_dvc_repro_in_a_fresh_checkout(checkout: Path):
    keep_sources(checkout / "params.yaml", {"forum", "essays"})
    first = dvc(checkout, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    params = yaml.safe_load((checkout / "params.yaml").read_text())
    for source in params["sources"]:
        assert (checkout / "data" / "ingest" / f"{source['id']}.parquet").exists()
    assert (checkout / "data" / "ledger_export" / "records.parquet").exists()
    ledger = Ledger(checkout / "data" / "ledger.duckdb")
    assert ledger.verify().ok
    entries = ledger.verify().entries

    # Nothing changed: nothing runs, and the ledger is untouched.
    again = dvc(checkout, "repro")
    assert again.returncode == 0, again.stderr
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout
    assert ledger.verify().entries == entries

    # A changed source re-runs ingest; the ledger keeps the first run and grows.
    with (checkout / "data" / "raw" / "forum.jsonl").open("a") as f:
        f.write('{"id": "post-late", "text": "A post that arrived after the first run."}\n')
    # Up to scrub only: train and release re-running adds a minute and nothing this test checks.
    third = dvc(checkout, "repro", "scrub")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "Running stage 'ingest'" in third.stdout
    check = ledger.verify()
    assert check.ok and check.entries > entries
    runs = ledger.query(
        "SELECT count(DISTINCT run_id) AS n FROM stage_counts WHERE stage = 'ingest'"
    ).item()
    assert runs == 2 * len(params["sources"])
    assert "Running stage 'scrub'" in third.stdout  # its input changed
    status = dvc(checkout, "status", "scrub")
    assert "up to date" in status.stdout, status.stdout
