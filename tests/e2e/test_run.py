import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resources.core.ledger import Ledger

ASSAY = str(Path(sys.executable).with_name("assay"))


@pytest.mark.e2e
def test_assay_run_ingests_every_source_and_prints_the_summary(project, tmp_path):
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [ASSAY, "run", "--params", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for source in ("forum", "tickets", "wiki", "essays", "scraped", "photos"):
        assert source in done.stdout
    assert "license_disallowed 41" in done.stdout
    assert (tmp_path / "home" / "dagster.yaml").read_text().count("enabled: false") == 1
    assert Ledger(project.parent / "data" / "ledger.duckdb").verify().ok


@pytest.mark.e2e
def test_assay_run_with_a_missing_source_path_fails_clearly(project, tmp_path):
    raw = yaml.safe_load(project.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["id"] in ("wiki", "essays")]
    project.write_text(yaml.safe_dump(raw))
    (project.parent / "data" / "raw" / "wiki.parquet").unlink()
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [ASSAY, "run", "--params", str(project), "--select", "ingest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 1
    assert "wiki.parquet does not exist" in done.stdout
    assert "essays" in done.stdout  # the other source still ran
