"""The train stage: one budgeted DP training run, its model file, and its ledger rows.

The budget is committed (resources.train.budget) before anything is trained. A run whose
records, train params and code all match an earlier run whose model is still on disk is not
trained again: that would only spend budget for the same model.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch

from resources.core.audit import LIVE
from resources.core.corpus import Corpus
from resources.core.ledger import Ledger
from resources.core.records import TEXT
from resources.core.storage import artifact, file_sha256, json_sha256, read_stage, write_text
from resources.train.budget import commit_budget, epsilon_spent
from resources.train.config import TrainConfig
from resources.train.dp import save_model
from resources.train.training_run import Plan, RunOutcome, execute, plan_run

STAGE = "train"
MODEL_FILE = "model.pt"
CODE_VERSION = "train-1"
"""The train asset's code_version; recorded per run, so a code change is never 'the same run'."""


@dataclass(frozen=True)
class TrainReport:
    plan: Plan
    trained_in: str
    """The run whose model is on disk: this one, or the earlier run reused."""
    reused: bool
    epsilon_cumulative: float
    outcome: RunOutcome | None
    """None when reused."""


NO_TEXT_RECORDS = "no_text_records"


@dataclass(frozen=True)
class Skipped:
    """The stage had nothing it could use, so it trained nothing; recorded in stage_skips."""

    reason: str
    detail: str


def model_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / STAGE / MODEL_FILE


def sidecar_path(model: Path) -> Path:
    """The model's .sha256 file, in sha256sum's format."""
    return model.with_name(model.name + ".sha256")


def ledger_rows(
    outcome: RunOutcome,
    train: TrainConfig,
    params_digest: str,
    model: Path,
    sha: str,
    run_id: str,
) -> list[tuple[str, list[dict] | pl.DataFrame]]:
    """The training_runs, evaluations and artifacts rows of a trained run."""
    dp, plan = outcome.dp, outcome.plan
    training_run = {
        "run_id": run_id,
        "code_version": CODE_VERSION,
        "params_digest": params_digest,
        "path": str(model),  # named like artifacts.path
        "model_sha256": sha,
        "model_spec": train.model,
        "model_kwargs": json.dumps(dict(train.model_kwargs), sort_keys=True),
        "upstream": train.upstream,
        "training_set_digest": plan.digest,
        "train_records": plan.members.height,
        "heldout_records": plan.heldout.height,
        "units": outcome.units,
        "privacy_unit": train.privacy_unit,
        "target_epsilon": train.target_epsilon,
        "epsilon": dp.epsilon,
        "delta": dp.delta,
        "noise_multiplier": dp.noise_multiplier,
        "sample_rate": dp.sample_rate,
        "steps": dp.steps,
        "epochs": train.epochs,
        "batch_size": train.batch_size,
        "max_grad_norm": dp.max_grad_norm,
        "accountant": dp.accountant,
        "poisson_sampling": True,
        "opacus_version": dp.opacus_version,
        "torch_version": torch.__version__,
        "seed": train.seed,
        "canaries": len(plan.canaries),
        "canary_insertions": train.canary_insertions,
        "train_seconds": dp.seconds,
    }
    evaluations = [
        asdict(ev)
        | {
            "run_id": run_id,
            "model_sha256": sha if ev.model_kind == "dp" else None,
            "epsilon": dp.epsilon if ev.model_kind == "dp" else None,
            "canaries": len(plan.canaries),
            "canary_insertions": train.canary_insertions,
        }
        for ev in outcome.evaluations
    ]
    model_file = artifact(model, STAGE, None, plan.members.height)
    return [
        ("training_runs", [training_run]),
        ("evaluations", evaluations),
        ("artifacts", [model_file.row() | {"run_id": run_id}]),
    ]


def training_run(ledger: Ledger, run_id: str) -> dict:
    """A run's training_runs row; raises when the run trained nothing."""
    rows = ledger.query("SELECT * FROM training_runs WHERE run_id = ?", [run_id]).to_dicts()
    if not rows:
        raise ValueError(f"no training_runs row for run {run_id}")
    return rows[-1]


def evaluations(ledger: Ledger, run_id: str) -> dict[str, dict]:
    """A run's evaluations rows by model_kind ('dp', 'reference')."""
    rows = ledger.query("SELECT * FROM evaluations WHERE run_id = ?", [run_id]).to_dicts()
    return {row["model_kind"]: row for row in rows}


def model_hashes(ledger: Ledger, run_id: str, model: Path) -> tuple[str, str | None, str | None]:
    """The model's sha256 as the ledger recorded it, as on disk, and as its .sha256 file says."""
    recorded = training_run(ledger, run_id)["model_sha256"]
    actual = file_sha256(model) if model.exists() else None
    sidecar = sidecar_path(model)
    declared = sidecar.read_text().split()[0] if sidecar.exists() else None
    return recorded, actual, declared


def reusable_run(ledger: Ledger, digest: str, params_digest: str, model: Path) -> str | None:
    """An earlier run that trained this very model: same records, same train params, same code.

    Re-running it would only spend budget again; if its model is still on disk, unchanged,
    the stage reports that run instead of training.
    """
    rows = ledger.query(
        "SELECT run_id, model_sha256 FROM training_runs WHERE training_set_digest = ?"
        f" AND params_digest = ? AND code_version = ? AND {LIVE} ORDER BY entry_seq DESC LIMIT 1",
        [digest, params_digest, CODE_VERSION],
    ).to_dicts()
    if rows and model.exists() and file_sha256(model) == rows[0]["model_sha256"]:
        return rows[0]["run_id"]
    return None


def train_stage(
    plan: Plan,
    train: TrainConfig,
    params_digest: str,
    model: Path,
    ledger: Ledger,
    run_id: str,
) -> TrainReport:
    """Reuse the earlier run of this very model, or commit the budget, train, save and record.

    Raises PrivacyBudgetExceeded (after recording the refusal) before anything is trained.
    """
    config = train
    reused = reusable_run(ledger, plan.digest, params_digest, model)
    if reused is not None:
        cumulative = epsilon_spent(ledger, plan.members["record_id"].to_list())
        return TrainReport(plan, reused, True, cumulative, None)
    cumulative = commit_budget(ledger, plan, run_id, train.target_epsilon, train.epsilon_budget)
    outcome = execute(plan, config)
    sha = save_model(outcome.dp.model, model, config.model, config.model_kwargs)
    write_text(f"{sha}  {model.name}\n", sidecar_path(model))
    ledger.append_many(ledger_rows(outcome, train, params_digest, model, sha, run_id))
    return TrainReport(plan, run_id, False, cumulative, outcome)


def run(config: TrainConfig, ledger: Ledger, run_id: str, corpus: Corpus) -> TrainReport | Skipped:
    """Train on every text record that config.upstream wrote; see train_stage. With no text
    record at all (an image-only corpus) nothing is trained: the skip and its reason go to
    the ledger, and no budget is spent."""
    records = read_stage(corpus.data_dir, config.upstream).filter(pl.col("kind") == TEXT)
    if records.is_empty():
        detail = f"no text records in {config.upstream}: the text model has nothing to learn"
        row = {"stage": STAGE, "reason": NO_TEXT_RECORDS, "detail": detail}
        ledger.append("stage_skips", [row], run_id)
        return Skipped(NO_TEXT_RECORDS, detail)
    plan = plan_run(records, config)
    del records  # the plan's frames alone hold the texts, so training can let go of them
    params_digest = json_sha256(config.model_dump(mode="json"))
    return train_stage(plan, config, params_digest, model_path(corpus.data_dir), ledger, run_id)
