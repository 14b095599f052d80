"""A tiny trained project the release gate can pass: train_project's model, plus the ledger rows
the gate reads that training alone does not write (sources, a scrub re-scan, artifacts). The
fixtures trained_template and release_project (tests/conftest.py) build on it."""

from pathlib import Path

import yaml

from pipelines.params import load_params
from resources.core.ledger import Ledger
from resources.core.storage import artifact
from resources.release.keys import init_key, key_path
from resources.train.stage import run as train_run
from tests.assets.test_train import write_upstream

TINY_TRAIN = {
    "model_kwargs": {"context": 4, "window": 16, "embed_dim": 8, "hidden": 32},
    "target_epsilon": 4.0,
    "target_delta": 1e-3,
    "epsilon_budget": 6.0,
    "epochs": 1,
    "batch_size": 16,
    "max_examples_per_unit": 2,
    "canaries": 2,
    "canary_digits": 2,
    "canary_insertions": 2,
    "attribute_records": 8,
    "holdout_fraction": 0.25,
    "mia_max_records": 10,
}


def build_trained(root: Path) -> Path:
    """Write params.yaml, upstream records and their ledger rows; train once."""
    params = {
        "paths": {"data_dir": "data", "ledger": "data/ledger.duckdb"},
        "policy": {"allowed_licenses": ["CC-BY-4.0"], "allowed_consent": ["opt_in"]},
        "sources": [
            {"id": s, "path": f"data/raw/{s}.jsonl", "format": "jsonl", "license": "CC-BY-4.0",
             "consent": "opt_in", "uri": f"https://example.org/{s}",
             "retrieved_at": "2026-01-01T00:00:00Z", "owner": "data@example.org"}
            for s in ("forum", "wiki")
        ],
        "train": TINY_TRAIN,
        "release": {"signing_key": ".assay/keys/release.pem"},
    }  # fmt: skip
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    write_upstream(root / "data")
    loaded = load_params(path)
    ledger = Ledger(loaded.ledger_path)
    ledger.append(
        "sources",
        [
            {"source_id": s.id, "uri": s.uri, "license": s.license, "consent": s.consent}
            for s in loaded.sources
        ],
        "setup",
    )
    outputs = sorted((root / "data" / "scrub").glob("*.parquet"))
    ledger.append(
        "artifacts",
        [artifact(p, "scrub", p.stem).row() | {"run_id": "setup"} for p in outputs],
        "setup",
    )
    ledger.append(
        "stage_counts",
        [{"stage": "scrub", "source_id": "forum", "records_in": 60, "records_out": 60,
          "dropped": 0}],
        "setup-scrub",
    )  # fmt: skip
    train_run(loaded.train, ledger, "train-run", loaded.corpus())
    init_key(key_path(loaded.root, loaded.release.signing_key))
    return path
