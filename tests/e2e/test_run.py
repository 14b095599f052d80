import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from resources.core.ledger import Ledger
from resources.core.ledger_tables import TABLES
from resources.screen.matching import read_hash_cache
from tests.resources.core.lineage_schema import validate_event
from tests.resources.evidence.checks import assert_release_evidence_is_the_ledgers

ASSAY = str(Path(sys.executable).with_name("assay"))


def _env(tmp_path: Path) -> dict[str, str]:
    """A bare environment; PYTHONPATH passes through so a worktree runs its own code."""
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@pytest.mark.e2e
def test_assay_run_ingests_every_source_and_prints_the_summary(project, tmp_path):
    env = _env(tmp_path)
    done = _assay_run(project, env)
    assert done.returncode == 0, done.stderr[-3000:]
    for source in ("forum", "tickets", "wiki", "essays", "scraped", "photos"):
        assert source in done.stdout
    assert "license_disallowed 41" in done.stdout
    assert (tmp_path / "home" / "dagster.yaml").read_text().count("enabled: false") == 1
    assert Ledger(project.parent / "data" / "ledger.duckdb").verify().ok
    # The same run (one full run is costly): nothing it wrote holds a listed record.
    assert_no_listed_record_in_what_the_run_wrote(project)
    assert_every_stage_emitted_valid_lineage(project)
    # It ended with a release that verifies; a later list naming a released record revokes it.
    release = _latest_release(project)
    assert _verify(release, project, env).returncode == 0
    assert_release_evidence_is_the_ledgers(release, Ledger(project.parent / "data/ledger.duckdb"))
    _list_a_released_record(project)
    rescreen = _assay_run(project, env, "rescreen")
    assert rescreen.returncode == 0, rescreen.stderr[-3000:]
    revoked = _verify(release, project, env)
    assert revoked.returncode != 0 and "revoked" in revoked.stdout.lower(), revoked.stdout


def assert_every_stage_emitted_valid_lineage(project: Path) -> None:
    """START and COMPLETE for every stage run, schema-valid; scrub's text marked as masked."""
    path = project.parent / "data" / "lineage" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for event in events:
        validate_event(event)
    seen = [(e["job"]["name"], e["eventType"]) for e in events]
    sources = len(yaml.safe_load(project.read_text())["sources"])
    assert seen.count(("ingest", "START")) == seen.count(("ingest", "COMPLETE")) == sources
    for stage in ("dedup", "scrub", "train", "release"):
        assert (seen.count((stage, "START")), seen.count((stage, "COMPLETE"))) == (1, 1), stage
    scrub = next(e for e in events if e["job"]["name"] == "scrub" and e["eventType"] == "COMPLETE")
    dedup_files = {d["name"] for d in scrub["inputs"]}
    assert scrub["outputs"] and all("/data/dedup/" in name for name in dedup_files)
    for output in scrub["outputs"]:
        text = output["facets"]["columnLineage"]["fields"]["text"]["inputFields"]
        assert [t["masking"] for f in text for t in f["transformations"]] == [True]
        assert text[0]["name"] in dedup_files
    release = next(
        e for e in events if e["job"]["name"] == "release" and e["eventType"] == "COMPLETE"
    )
    (folder,) = release["outputs"]
    assert folder["name"] == str(_latest_release(project).resolve())
    assert folder["outputFacets"]["outputStatistics"]["rowCount"] > 0


def _latest_release(project: Path) -> Path:
    ledger = Ledger(project.parent / "data" / "ledger.duckdb")
    row = ledger.query(
        "SELECT path FROM releases WHERE status = 'PASSED' ORDER BY entry_seq DESC LIMIT 1"
    )
    assert row.height == 1, "make run ends with a PASSED release"
    return Path(row.item())


def _assay_run(project: Path, env: dict, select: str | None = None) -> subprocess.CompletedProcess:
    selection = ["--select", select] if select else []
    return subprocess.run(
        [ASSAY, "run", "--params", str(project), *selection],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _verify(release: Path, project: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ASSAY, "verify", "--params", str(project), str(release)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=project.parent,
    )


def _list_a_released_record(project: Path) -> None:
    """A new hash list naming the normalized text of one record the release trained on."""
    from resources.core.normalize import normalized_sha256

    data = project.parent / "data"
    ledger = Ledger(data / "ledger.duckdb")
    member = ledger.query(
        "SELECT t.record_id FROM training_set t JOIN releases r ON t.run_id = r.training_run_id"
        " WHERE t.role = 'member' AND r.status = 'PASSED' ORDER BY t.record_id LIMIT 1"
    ).item()
    text = pl.read_parquet(data / "ingest").filter(pl.col("record_id") == member)["text"][0]
    lists = data / "hashlists"
    (lists / "late.csv").write_text(
        f"hash,type,label\n{normalized_sha256(text)},sha256_text,late\n"
    )


@pytest.mark.e2e
def test_assay_run_with_a_missing_source_path_fails_clearly(project, tmp_path):
    raw = yaml.safe_load(project.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["id"] in ("wiki", "essays")]
    project.write_text(yaml.safe_dump(raw))
    (project.parent / "data" / "raw" / "wiki.parquet").unlink()
    env = _env(tmp_path)
    done = _assay_run(project, env, "ingest")
    assert done.returncode == 1
    assert "wiki.parquet does not exist" in done.stdout
    assert "essays" in done.stdout  # the other source still ran


SCREENING_TABLES = {"quarantine", "incidents", "screen_matches"}
"""The ledger's quarantine rows: the only ledger rows that may name a listed record."""


def _listed(project: Path, ledger: Ledger) -> tuple[set[str], list[str]]:
    """The listed records' ids (from the quarantine) and their texts (from the sources)."""
    quarantine = ledger.query("SELECT DISTINCT record_id, source_id, source_key FROM quarantine")
    raw = project.parent / "data" / "raw"
    texts = []
    for row in quarantine.iter_rows(named=True):
        if row["source_id"] == "essays":
            texts.append((raw / "essays" / row["source_key"]).read_text(encoding="utf-8"))
        elif row["source_id"] == "forum":
            for line in (raw / "forum.jsonl").read_text(encoding="utf-8").splitlines():
                if f'"{row["source_key"]}"' in line:
                    texts.append(json.loads(line)["text"])
    return set(quarantine["record_id"]), texts


def _mentions(values: list, ids: set[str], texts: list[str]) -> bool:
    strings = [v for v in values if isinstance(v, str)]
    return any(i in v for v in strings for i in ids) or any(t in v for v in strings for t in texts)


def assert_no_listed_record_in_what_the_run_wrote(project: Path) -> None:
    """Every file under data/ but the inputs: no listed record_id, no listed text. Only the
    ledger's quarantine rows and the hash cache may name the records."""
    data = project.parent / "data"
    ledger = Ledger(data / "ledger.duckdb")
    ids, texts = _listed(project, ledger)
    assert len(ids) == 5 and len(texts) == 3  # the sample's five listed items, three texts
    inputs = (data / "raw", data / "hashlists")
    cache = data / "cache" / "screen_hashes.parquet"
    written = [
        p
        for p in data.rglob("*")
        if p.is_file() and p != cache and not any(p.is_relative_to(i) for i in inputs)
    ]
    assert any(p.parts[-2] == "train" for p in written)  # the whole chain ran
    for path in written:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            values = [v for column in frame.columns for v in frame[column].to_list()]
            assert not _mentions(values, ids, texts), path
        elif path.name == "ledger.duckdb":
            for table in sorted(set(TABLES) - SCREENING_TABLES):
                rows = ledger.query(f"SELECT * FROM {table}")
                values = [v for column in rows.columns for v in rows[column].to_list()]
                assert not _mentions(values, ids, texts), table
        else:
            content = path.read_bytes()
            assert not any(i.encode() in content for i in ids), path
            assert not any(t.encode() in content for t in texts), path
    assert read_hash_cache(cache)["record_id"].is_in(list(ids)).sum() == len(ids)
