from pipelines.params import Train
from resources.ledger import Ledger
from resources.storage import file_sha256
from resources.train_stage import (
    CODE_VERSION,
    model_hashes,
    model_path,
    reusable_run,
    run_config,
    sidecar_path,
)


def test_run_config_carries_every_train_param():
    train = Train(
        model_kwargs={"context": 4},
        privacy_unit="source_id",
        target_epsilon=2.5,
        target_delta=1e-4,
        max_grad_norm=0.5,
        epochs=5,
        batch_size=8,
        max_physical_batch_size=4,
        lr=0.1,
        seed=7,
        accountant="rdp",
        holdout_fraction=0.3,
        max_examples_per_unit=3,
        reference=False,
        canaries=1,
        canary_digits=4,
        canary_insertions=6,
        mia_max_records=50,
        threads=1,
    )
    config = run_config(train)
    assert (config.model, config.model_kwargs, config.privacy_unit) == (
        train.model,
        {"context": 4},
        "source_id",
    )
    assert (config.holdout_fraction, config.max_examples_per_unit, config.reference) == (
        0.3,
        3,
        False,
    )
    assert (config.canaries, config.canary_digits, config.canary_insertions) == (1, 4, 6)
    assert (config.mia_max_records, config.threads) == (50, 1)
    dp = config.dp
    assert (dp.target_epsilon, dp.target_delta, dp.max_grad_norm) == (2.5, 1e-4, 0.5)
    assert (dp.epochs, dp.batch_size, dp.max_physical_batch_size) == (5, 8, 4)
    assert (dp.lr, dp.seed, dp.accountant, dp.noise_multiplier) == (0.1, 7, "rdp", None)


def record_run(ledger: Ledger, run_id: str, sha: str, **overrides) -> None:
    row = {
        "run_id": run_id,
        "code_version": CODE_VERSION,
        "params_digest": "params",
        "training_set_digest": "digest",
        "model_sha256": sha,
    }
    ledger.append("training_runs", [row | overrides])


def test_a_run_is_reused_only_when_records_params_code_and_model_all_match(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    model = model_path(tmp_path / "data")
    assert model == tmp_path / "data" / "train" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    sha = file_sha256(model)
    assert reusable_run(ledger, "digest", "params", model) is None  # nothing trained yet
    record_run(ledger, "r1", sha)
    record_run(ledger, "r2", sha)
    record_run(ledger, "r3", sha, code_version="train-0")
    assert reusable_run(ledger, "digest", "params", model) == "r2"  # the latest match
    assert reusable_run(ledger, "other", "params", model) is None
    assert reusable_run(ledger, "digest", "other", model) is None
    model.write_bytes(b"changed")
    assert reusable_run(ledger, "digest", "params", model) is None
    model.unlink()
    assert reusable_run(ledger, "digest", "params", model) is None


def test_model_hashes_read_the_ledger_the_file_and_its_sidecar(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    model = model_path(tmp_path)
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    sha = file_sha256(model)
    record_run(ledger, "r1", sha)
    assert model_hashes(ledger, "r1", model) == (sha, sha, None)
    assert sidecar_path(model) == model.with_name("model.pt.sha256")
    sidecar_path(model).write_text(f"{sha}  model.pt\n")
    assert model_hashes(ledger, "r1", model) == (sha, sha, sha)
    model.unlink()
    assert model_hashes(ledger, "r1", model) == (sha, None, sha)
