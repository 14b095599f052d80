from resources.core.ledger import Ledger
from resources.core.storage import file_sha256
from resources.train.stage import (
    CODE_VERSION,
    model_hashes,
    model_path,
    reusable_run,
    sidecar_path,
)


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
