import random

import dagster as dg
import polars as pl
import pytest
import yaml
from opacus.accountants import PRVAccountant

from assets.train import build_train_asset
from pipelines.params import load_params
from pipelines.resource import AssayResource
from resources.core.ledger import Ledger
from resources.core.records import RECORD_SCHEMA, text_record_id
from resources.core.storage import file_sha256, write_stage
from resources.train.dp import load_model
from resources.train.stage import MODEL_FILE

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "paper", "seven", "quiet"]


def write_upstream(data_dir, n: int = 120) -> None:
    rng = random.Random(0)
    for source in ("forum", "wiki"):
        texts = [
            f"{source} {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
            for i in range(n // 2)
        ]
        frame = pl.DataFrame(
            {
                "record_id": [text_record_id(t) for t in texts],
                "source_id": [source] * len(texts),
                "source_key": [str(i) for i in range(len(texts))],
                "kind": ["text"] * len(texts),
                "text": texts,
                "image_path": [None] * len(texts),
            },
            schema=RECORD_SCHEMA,
        )
        write_stage(frame, data_dir, "scrub", source)


@pytest.fixture
def train_project(tmp_path):
    params = {
        "paths": {"data_dir": "data", "ledger": "data/ledger.duckdb"},
        "sources": [],
        "train": {
            "model_kwargs": {"context": 4, "window": 16, "embed_dim": 8, "hidden": 32},
            "target_epsilon": 4.0,
            "target_delta": 1e-3,
            "epsilon_budget": 6.0,
            "epochs": 2,
            "batch_size": 16,
            "max_examples_per_unit": 2,
            "canaries": 2,
            "canary_digits": 2,
            "canary_insertions": 2,
            "holdout_fraction": 0.25,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    write_upstream(tmp_path / "data")
    return path


def failure_of(result: dg.ExecuteInProcessResult) -> str:
    """The class names and messages of the step failure's error chain."""
    error = result.get_step_failure_events()[0].event_specific_data.error
    parts = []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        error = error.cause
    return "\n".join(parts)


def materialize(params_path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_train_asset(load_params(params_path))],
        resources={"assay": AssayResource(params_path=str(params_path))},
        raise_on_error=False,
    )


def test_train_records_what_it_spent_and_refuses_to_overspend(train_project):
    project = train_project
    ledger = Ledger(project.parent / "data" / "ledger.duckdb")
    model_path = project.parent / "data" / "train" / MODEL_FILE

    first = materialize(project)
    assert first.success
    assert all(c.passed for c in first.get_asset_check_evaluations())
    run = ledger.query("SELECT * FROM training_runs").to_dicts()
    assert len(run) == 1
    run = run[0]

    # the epsilon recorded is what an independent accountant computes from the recorded params
    independent = PRVAccountant()
    independent.history = [(run["noise_multiplier"], run["sample_rate"], run["steps"])]
    assert run["epsilon"] == independent.get_epsilon(delta=run["delta"])
    assert run["epsilon"] <= run["target_epsilon"] == 4.0
    assert (run["accountant"], run["opacus_version"], run["privacy_unit"]) == (
        "prv",
        "1.6.0",
        "record_id",
    )

    # the model's hash verifies: ledger, sidecar file and bytes on disk agree, and it loads
    assert file_sha256(model_path) == run["model_sha256"]
    assert (
        model_path.with_name(MODEL_FILE + ".sha256").read_text().split()[0] == run["model_sha256"]
    )
    load_model(model_path, expected_sha256=run["model_sha256"])
    artifact = ledger.query("SELECT * FROM artifacts WHERE stage = 'train'").to_dicts()
    assert artifact[0]["sha256"] == run["model_sha256"]

    # the audit of the DP model and of the non-private reference is in the ledger
    evals = ledger.query("SELECT * FROM evaluations ORDER BY model_kind").to_dicts()
    assert [e["model_kind"] for e in evals] == ["dp", "reference"]
    for e in evals:
        assert 0.0 <= e["mia_auc"] <= 1.0 and 0.0 <= e["mia_tpr_at_1pct_fpr"] <= 1.0
        assert e["canary_exposure_max"] is not None and e["canaries"] == 2
        assert e["perplexity"] > 1.0
        # attribute inference, for both models: accuracy over the population baseline
        assert e["attr_records"] == 16 and 0.0 <= e["attr_accuracy"] <= 1.0
        assert e["attr_advantage"] == pytest.approx(e["attr_accuracy"] - e["attr_baseline"])
    assert evals[0]["model_sha256"] == run["model_sha256"] and evals[1]["model_sha256"] is None

    roles = ledger.query("SELECT role, count(*) AS n FROM training_set GROUP BY role").to_dicts()
    counts = {r["role"]: r["n"] for r in roles}
    assert counts["member"] == run["train_records"] and sum(counts.values()) == 120

    # unchanged records, params and code: the earlier run is reported, nothing is spent again
    again = materialize(project)
    assert again.success
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta["reused"].value is True and meta["training_run_id"].value == run["run_id"]
    assert ledger.query("SELECT count(*) FROM privacy_budget").item() == 1

    # a new run on the same records would take them to 8 > 6: refused before training
    params = yaml.safe_load(project.read_text())
    params["train"]["epochs"] = 3
    project.write_text(yaml.safe_dump(params))
    second = materialize(project)
    assert not second.success
    failure = failure_of(second)
    assert "PrivacyBudgetExceeded" in failure and "refusing to train" in failure
    assert ledger.query("SELECT count(*) FROM training_runs").item() == 1
    assert file_sha256(model_path) == run["model_sha256"]

    # another split of the same records has another digest, but the same records' budgets
    params["train"]["holdout_fraction"] = 0.4
    project.write_text(yaml.safe_dump(params))
    third = materialize(project)
    assert not third.success and "refusing to train" in failure_of(third)
    budget = ledger.query(
        "SELECT status, epsilon_cumulative, training_set_digest = ? AS same"
        " FROM privacy_budget ORDER BY entry_seq",
        [run["training_set_digest"]],
    )
    assert budget.rows() == [
        ("committed", 4.0, True),
        ("refused", 4.0, True),
        ("refused", 4.0, False),
    ]
    assert ledger.verify().ok


def test_train_wiring_refuses_a_mismatched_upstream(train_project):
    project = train_project
    asset = build_train_asset(load_params(project))
    raw = yaml.safe_load(project.read_text())
    raw["train"]["upstream"] = "ingest"
    project.write_text(yaml.safe_dump(raw))
    result = dg.materialize(
        [asset],
        resources={"assay": AssayResource(params_path=str(project))},
        raise_on_error=False,
    )
    assert not result.success
    assert "train.upstream is 'ingest', wired to 'scrub'" in failure_of(result)


def test_an_image_only_corpus_skips_training_with_a_reason_and_succeeds(train_project):
    data_dir = train_project.parent / "data"
    for path in (data_dir / "scrub").glob("*.parquet"):
        path.unlink()
    images = pl.DataFrame(
        {
            "record_id": ["a" * 64, "b" * 64],
            "source_id": ["photos", "photos"],
            "source_key": ["1.png", "2.png"],
            "kind": ["image", "image"],
            "text": [None, None],
            "image_path": ["data/raw/photos/1.png", "data/raw/photos/2.png"],
        },
        schema=RECORD_SCHEMA,
    )
    write_stage(images, data_dir, "scrub", "photos")
    result = materialize(train_project)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("train")
    meta = materialization.metadata
    assert meta["skipped"].value is True and meta["skip_reason"].value == "no_text_records"
    ledger = Ledger(data_dir / "ledger.duckdb")
    skips = ledger.query("SELECT stage, reason, detail FROM stage_skips").to_dicts()
    assert skips == [
        {
            "stage": "train",
            "reason": "no_text_records",
            "detail": "no text records in scrub: the text model has nothing to learn",
        }
    ]
    assert ledger.query("SELECT count(*) FROM privacy_budget").item() == 0
    assert not (data_dir / "train" / MODEL_FILE).exists()
