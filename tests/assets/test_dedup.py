import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from PIL import Image
from skimage import data

from assets.dedup import build_dedup_asset
from pipelines.params import load_params
from pipelines.resource import AssayResource
from resources.core.ledger import Ledger
from resources.core.records import text_record_id
from resources.core.storage import artifact, read_stage, stage_path
from tests.assets import markdown
from tests.resources.dedup.corpus import doc, ingested, source


def near(text: str, seed: int) -> str:
    words = text.split()
    words[30:32] = [f"edit{seed}a", f"edit{seed}b"]
    return " ".join(words)


def write_params(root: Path, sources: list[dict]) -> Path:
    path = root / "params.yaml"
    body = {
        "paths": {"data_dir": "data", "ledger": "data/ledger.duckdb"},
        "policy": {"allowed_licenses": ["CC0-1.0"], "allowed_consent": ["opt_in"]},
        "dedup": {"check_sample": 50},
        "sources": sources,
    }
    path.write_text(yaml.safe_dump(body))
    return path


def materialize(params_path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_dedup_asset(load_params(params_path))],
        resources={"assay": AssayResource(params_path=str(params_path))},
        instance=dg.DagsterInstance.ephemeral(),
    )


@pytest.fixture
def project(tmp_path: Path, dagster_home: Path) -> Path:
    img = Image.fromarray(data.astronaut()).convert("RGB").resize((160, 160))
    img.save(tmp_path / "astro.png")
    img.resize((70, 70)).save(tmp_path / "astro_small.jpg", quality=60)
    Image.fromarray(data.coffee()).convert("RGB").resize((160, 160)).save(tmp_path / "coffee.png")
    sources = [
        source("open", "CC0-1.0", "opt_in", "2025-06-01T00:00:00Z"),
        source("closed", "LicenseRef-Unknown", "none", "2024-01-01T00:00:00Z"),
    ]
    path = write_params(tmp_path, sources)
    ingested(
        tmp_path,
        "open",
        [
            ("o1", doc(1)),
            ("o2", doc(2)),
            ("o3", near(doc(3), 3)),
            ("img1", str(tmp_path / "astro.png")),
            ("img2", str(tmp_path / "coffee.png")),
        ],
    )
    ingested(
        tmp_path,
        "closed",
        [
            ("c1", doc(1).upper()),
            ("c3", doc(3)),
            ("c4", doc(4)),
            ("img3", str(tmp_path / "astro_small.jpg")),
        ],
    )
    return path


def drops_of(params_path: Path, run_id: str) -> dict[str, dict]:
    ledger = Ledger(load_params(params_path).ledger_path)
    rows = ledger.query(
        "SELECT source_key, reason, evidence FROM drops WHERE stage = 'dedup' AND run_id = ?",
        [run_id],
    ).to_dicts()
    return {r["source_key"]: {"reason": r["reason"], **json.loads(r["evidence"])} for r in rows}


def test_full_run_keeps_best_provenance_and_names_duplicate_of(project):
    result = materialize(project)
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"conservation": True, "no_kept_duplicates": True}

    params = load_params(project)
    kept = read_stage(params.data_dir, "dedup")
    assert sorted(kept["source_key"]) == ["c4", "img1", "img2", "o1", "o2", "o3"]

    drops = drops_of(project, result.run_id)
    assert set(drops) == {"c1", "c3", "img3"}
    assert drops["c1"]["reason"] == "duplicate_exact"
    assert drops["c1"]["duplicate_of"] == {
        "record_id": text_record_id(doc(1)),
        "source_id": "open",
        "source_key": "o1",
    }
    # c3 was retrieved earlier, but its source has no allowed license or consent.
    assert drops["c3"]["reason"] == "duplicate_near"
    assert drops["c3"]["duplicate_of"]["source_key"] == "o3"
    assert 0.8 <= drops["c3"]["similarity"] < 1.0
    assert drops["img3"]["method"] == "phash_hamming"
    assert drops["img3"]["duplicate_of"]["source_key"] == "img1"

    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["mode"].value == "full"
    assert meta["clusters"].value == 3
    assert markdown.counts(meta["cluster_size_histogram"]) == {"2": 3}
    assert markdown.rows(meta["removed_per_source"]) == [
        {"source": "closed", "duplicate_exact": "1", "duplicate_near": "2"}
    ]
    assert meta["lsh_recall_at_threshold"].value >= 0.95


def test_incremental_run_dedups_a_new_source_against_the_accepted_set(project):
    first = materialize(project)
    assert first.success
    params = load_params(project)
    before = {
        s: artifact(stage_path(params.data_dir, "dedup", s)).sha256 for s in params.source_ids
    }

    raw = yaml.safe_load(project.read_text())
    # The newcomer has the best provenance, yet accepted records are never revoked.
    raw["sources"].append(source("late", "CC0-1.0", "opt_in", "2020-01-01T00:00:00Z"))
    project.write_text(yaml.safe_dump(raw))
    ingested(project.parent, "late", [("l2", near(doc(2), 9)), ("l5", doc(5)), ("l5b", doc(5))])
    second = materialize(project)
    assert second.success
    meta = second.get_asset_materialization_events()[0].materialization.metadata
    assert meta["mode"].value == "incremental"
    assert meta["sources_processed"].value == "late"
    assert meta["sources_carried"].value == "closed, open"

    drops = drops_of(project, second.run_id)
    assert set(drops) == {"l2", "l5b"}
    assert drops["l2"]["duplicate_of"]["source_key"] == "o2"
    assert drops["l5b"]["duplicate_of"]["source_key"] == "l5"
    after = {s: artifact(stage_path(params.data_dir, "dedup", s)).sha256 for s in params.source_ids}
    assert after == before

    ledger = Ledger(params.ledger_path)
    counts = ledger.query(
        "SELECT source_id, records_in, records_out, dropped FROM stage_counts"
        " WHERE stage = 'dedup' AND run_id = ?",
        [second.run_id],
    ).to_dicts()
    assert counts == [{"source_id": "late", "records_in": 3, "records_out": 1, "dropped": 2}]
    runs = ledger.query("SELECT mode, processed FROM dedup_runs ORDER BY entry_seq").to_dicts()
    assert runs == [
        {"mode": "full", "processed": "closed,open"},
        {"mode": "incremental", "processed": "late"},
    ]

    third = materialize(project)
    assert third.success
    meta = third.get_asset_materialization_events()[0].materialization.metadata
    assert (meta["mode"].value, meta["sources_processed"].value) == ("incremental", "none")
    assert meta["accepted_total"].value == 7
    assert all(c.passed for c in third.get_asset_check_evaluations())


def test_changed_settings_force_a_full_run(project):
    assert materialize(project).success
    raw = yaml.safe_load(project.read_text())
    raw["dedup"]["threshold"] = 0.9
    project.write_text(yaml.safe_dump(raw))
    again = materialize(project)
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta["mode"].value == "full"
    assert meta["records_in"].value == 9
