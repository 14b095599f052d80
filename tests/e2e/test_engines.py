"""engine: ray gives what engine: local gives, byte for byte and ledger row for ledger row."""

from pathlib import Path

import pytest
import yaml

from resources.core.ledger import Ledger
from resources.core.ledger_tables import TABLES
from tests.conftest import copy_project
from tests.e2e.test_run import _assay_run, _env

BOOKKEEPING = {"run_id", "entry_seq", "row_no", "recorded_at"}
"""Columns that say which run wrote a row and when, not what it found."""
RUN_TABLES = {"runs", "checkpoints"}
"""Rows about the runs themselves: their ids, params digests (the engine differs) and
signed chain heads."""


def _run_up_to_scrub(tmp_path: Path, engine: dict, kept_as: str) -> Path:
    """ingest, dedup and scrub on the engine, in tmp_path/project, moved to tmp_path/kept_as.

    Both runs use the same project path: records hold their image's absolute path."""
    root = tmp_path / "project"
    root.mkdir()
    params = copy_project(root)
    raw = yaml.safe_load(params.read_text())
    params.write_text(yaml.safe_dump({**raw, "engine": engine}, sort_keys=False))
    done = _assay_run(params, _env(root), "ingest,dedup,scrub")
    assert done.returncode == 0, done.stderr[-3000:]
    # Ray's own line: the run really went to Ray, not through the local path.
    assert ("Started a local Ray instance" in done.stderr) == (engine["kind"] == "ray")
    return root.rename(tmp_path / kept_as) / "data"


def _files(data: Path, stage: str) -> dict[str, bytes]:
    folder = data / stage
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _rows(data: Path, table: str) -> list[tuple]:
    rows = Ledger(data / "ledger.duckdb").query(f"SELECT * FROM {table}")
    rows = rows.select([c for c in rows.columns if c not in BOOKKEEPING])
    return sorted(rows.iter_rows(), key=repr)


@pytest.mark.e2e
def test_the_ray_engine_writes_what_the_local_engine_writes(tmp_path):
    local = _run_up_to_scrub(tmp_path, {"kind": "local"}, "local")
    ray = _run_up_to_scrub(tmp_path, {"kind": "ray", "num_cpus": 2}, "ray")

    for stage in ("dedup", "scrub"):
        local_files, ray_files = _files(local, stage), _files(ray, stage)
        assert any(name.endswith(".parquet") for name in local_files), stage
        assert local_files.keys() == ray_files.keys(), stage
        for name, content in local_files.items():
            assert ray_files[name] == content, f"{stage}/{name}"

    compared = []
    for table in sorted(set(TABLES) - RUN_TABLES):
        local_rows = _rows(local, table)
        assert local_rows == _rows(ray, table), table
        compared += [table] if local_rows else []
    stages = {"records", "drops", "stage_counts", "pii_record_counts", "artifacts"}
    door = {"quarantine", "incidents", "screen_matches"}
    assert stages | door <= set(compared)
    # The door hashed on Ray and found what data/hashlists/demo.csv lists: texts and images.
    ledger = Ledger(ray / "ledger.duckdb")
    assert set(ledger.query("SELECT DISTINCT kind FROM quarantine")["kind"]) == {"image", "text"}
    harmful = ledger.query("SELECT count(*) AS n FROM drops WHERE reason = 'harmful_hash_match'")
    assert harmful["n"][0] > 0
