"""train: DP-SGD on the curated corpus, the privacy budget, the privacy audit, all in the ledger.

Order matters for the budget: the run's training set and its planned epsilon are committed to
the ledger (training_set, privacy_budget) BEFORE training, so a crash mid-run cannot leave
spent epsilon unrecorded; a run that would take any of its records over
params.train.epsilon_budget is refused, with a 'refused' row, before anything is trained.
The budget is kept per record: the epsilon of a run counts against every record it trained on.
"""

import json
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import polars as pl
import torch

from assets.execution import AFTER_UPSTREAM, LEDGER_POOL
from pipelines.params import Params, Train
from pipelines.resource import AssayResource
from resources.dp_training import (
    DPConfig,
    PrivacyBudgetExceeded,
    check_budget,
    epsilon_from_history,
    save_model,
    sha256_file,
)
from resources.ledger import Ledger
from resources.records import TEXT
from resources.storage import read_stage
from resources.training_run import Plan, RunConfig, RunOutcome, execute, plan_run

STAGE = "train"
MODEL_FILE = "model.pt"
CODE_VERSION = "train-1"
CHECKS = [
    dg.AssetCheckSpec("privacy_budget", asset=STAGE, blocking=True),
    dg.AssetCheckSpec("model_integrity", asset=STAGE, blocking=True),
    dg.AssetCheckSpec("privacy_audit", asset=STAGE),
]


def run_config(train: Train) -> RunConfig:
    return RunConfig(
        model=train.model,
        model_kwargs=dict(train.model_kwargs),
        privacy_unit=train.privacy_unit,
        holdout_fraction=train.holdout_fraction,
        max_examples_per_unit=train.max_examples_per_unit,
        dp=DPConfig(
            target_epsilon=train.target_epsilon,
            target_delta=train.target_delta,
            max_grad_norm=train.max_grad_norm,
            epochs=train.epochs,
            batch_size=train.batch_size,
            max_physical_batch_size=train.max_physical_batch_size,
            lr=train.lr,
            seed=train.seed,
            accountant=train.accountant,
        ),
        reference=train.reference,
        canaries=train.canaries,
        canary_digits=train.canary_digits,
        canary_insertions=train.canary_insertions,
        mia_max_records=train.mia_max_records,
        threads=train.threads,
    )


def epsilon_spent(ledger: Ledger, member_ids: list[str]) -> float:
    """The most epsilon already committed on any one of these records, summed over runs.

    Kept per record, so reusing a dataset, a subset or superset of it, or another held-out
    split of it all count against the same records' budgets.
    """
    per_record = ledger.query(
        "SELECT t.record_id, sum(b.epsilon_committed) AS spent"
        " FROM training_set t JOIN privacy_budget b"
        " ON t.run_id = b.run_id AND t.training_set_digest = b.training_set_digest"
        " WHERE t.role = 'member' AND b.status = 'committed' GROUP BY t.record_id"
    )
    if per_record.is_empty():
        return 0.0
    spent = per_record.filter(pl.col("record_id").is_in(member_ids))["spent"].max()
    return float(spent) if spent is not None else 0.0


def _roles(plan: Plan, run_id: str) -> pl.DataFrame:
    return pl.concat(
        [
            plan.members.select("record_id", "source_id").with_columns(role=pl.lit("member")),
            plan.heldout.select("record_id", "source_id").with_columns(role=pl.lit("heldout")),
        ]
    ).with_columns(run_id=pl.lit(run_id), training_set_digest=pl.lit(plan.digest))


def commit_budget(ledger: Ledger, plan: Plan, train: Train, run_id: str) -> float:
    """Refuse (raise) or commit this run's planned epsilon; returns the new cumulative total.

    The training set and the commitment go in one atomic append, before any training.
    """
    spent = epsilon_spent(ledger, plan.members["record_id"].to_list())
    row = {
        "training_set_digest": plan.digest,
        "run_id": run_id,
        "members": plan.members.height,
        "epsilon_budget": train.epsilon_budget,
    }
    try:
        check_budget(spent, train.target_epsilon, train.epsilon_budget)
    except PrivacyBudgetExceeded:
        refused = {"status": "refused", "epsilon_committed": 0.0, "epsilon_cumulative": spent}
        ledger.append("privacy_budget", [row | refused])
        raise
    total = spent + train.target_epsilon
    committed = {
        "status": "committed",
        "epsilon_committed": train.target_epsilon,
        "epsilon_cumulative": total,
    }
    ledger.append_many(
        [("training_set", _roles(plan, run_id)), ("privacy_budget", [row | committed])]
    )
    return total


def _ledger_rows(
    outcome: RunOutcome, params: Params, model_path: Path, sha: str, run_id: str
) -> list[tuple[str, list[dict] | pl.DataFrame]]:
    train, dp, plan = params.train, outcome.dp, outcome.plan
    training_run = {
        "run_id": run_id,
        "code_version": CODE_VERSION,
        "params_digest": params.digest("train"),
        "path": str(model_path),  # named like artifacts.path
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
    artifact = {
        "path": str(model_path),
        "sha256": sha,
        "size_bytes": model_path.stat().st_size,
        "stage": STAGE,
        "source_id": None,
        "records": plan.members.height,
        "run_id": run_id,
    }
    return [
        ("training_runs", [training_run]),
        ("evaluations", evaluations),
        ("artifacts", [artifact]),
    ]


def _training_run(ledger: Ledger, run_id: str) -> dict:
    rows = ledger.query("SELECT * FROM training_runs WHERE run_id = ?", [run_id]).to_dicts()
    if not rows:
        raise ValueError(f"no training_runs row for run {run_id}")
    return rows[-1]


def privacy_budget_check(ledger: Ledger, run_id: str, train: Train) -> dg.AssetCheckResult:
    """Spent epsilon <= target, recomputable from the recorded parameters; total <= budget."""
    row = _training_run(ledger, run_id)
    recomputed = epsilon_from_history(
        [(row["noise_multiplier"], row["sample_rate"], row["steps"])],
        row["delta"],
        row["accountant"],
    )
    members = ledger.query(
        "SELECT record_id FROM training_set WHERE run_id = ? AND role = 'member'", [run_id]
    )["record_id"].to_list()
    cumulative = epsilon_spent(ledger, members)
    problems = []
    if row["epsilon"] > row["target_epsilon"]:
        problems.append(f"spent {row['epsilon']:.4f} > target {row['target_epsilon']}")
    if abs(recomputed - row["epsilon"]) > 1e-9:
        problems.append(f"recorded epsilon {row['epsilon']} != recomputed {recomputed}")
    if cumulative > train.epsilon_budget + 1e-9:
        problems.append(f"cumulative {cumulative:.4f} > budget {train.epsilon_budget}")
    return dg.AssetCheckResult(
        check_name="privacy_budget",
        passed=not problems,
        description=(
            "epsilon spent <= target (recomputed by the accountant); epsilon committed on"
            " any training record, over all runs, <= budget"
        ),
        metadata={
            "epsilon": row["epsilon"],
            "epsilon_recomputed": recomputed,
            "target_epsilon": row["target_epsilon"],
            "epsilon_cumulative": cumulative,
            "epsilon_budget": train.epsilon_budget,
            "problems": "\n".join(problems) or "none",
        },
    )


def model_integrity_check(ledger: Ledger, run_id: str, model_path: Path) -> dg.AssetCheckResult:
    """The model file on disk is the one the ledger recorded, and so is its .sha256 file."""
    recorded = _training_run(ledger, run_id)["model_sha256"]
    actual = sha256_file(model_path) if model_path.exists() else None
    sidecar = model_path.with_name(model_path.name + ".sha256")
    declared = sidecar.read_text().split()[0] if sidecar.exists() else None
    return dg.AssetCheckResult(
        check_name="model_integrity",
        passed=actual == recorded == declared,
        metadata={"recorded": recorded, "actual": str(actual), "sidecar": str(declared)},
    )


def privacy_audit_check(ledger: Ledger, run_id: str, train: Train) -> dg.AssetCheckResult:
    """Warns when the DP model's membership-inference AUC is above params.train.max_mia_auc."""
    dp = _evaluations(ledger, run_id)["dp"]
    return dg.AssetCheckResult(
        check_name="privacy_audit",
        passed=dp["mia_auc"] <= train.max_mia_auc,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"membership-inference AUC of the DP model <= {train.max_mia_auc}",
        metadata={"mia_auc": dp["mia_auc"], "canary_exposure_max": dp["canary_exposure_max"]},
    )


def _evaluations(ledger: Ledger, run_id: str) -> dict[str, dict]:
    rows = ledger.query("SELECT * FROM evaluations WHERE run_id = ?", [run_id]).to_dicts()
    return {row["model_kind"]: row for row in rows}


def _metadata(ledger: Ledger, run_id: str, cumulative: float) -> dict:
    row = _training_run(ledger, run_id)
    meta: dict = {
        "model_sha256": row["model_sha256"],
        "path": dg.MetadataValue.path(row["path"]),
        "training_run_id": run_id,
        "training_set_digest": row["training_set_digest"],
        "train_records": row["train_records"],
        "heldout_records": row["heldout_records"],
        "units": row["units"],
        "privacy_unit": row["privacy_unit"],
        "epsilon": row["epsilon"],
        "delta": row["delta"],
        "epsilon_cumulative": cumulative,
        "noise_multiplier": row["noise_multiplier"],
        "sample_rate": row["sample_rate"],
        "steps": row["steps"],
        "train_seconds": round(row["train_seconds"], 2),
    }
    for kind, ev in sorted(_evaluations(ledger, run_id).items()):
        for name in ("heldout_loss", "perplexity", "mia_auc", "mia_tpr_at_1pct_fpr"):
            meta[f"{kind}_{name}"] = ev[name]
        meta[f"{kind}_canary_exposure_max"] = ev["canary_exposure_max"]
    return meta


def reusable_run(ledger: Ledger, digest: str, params_digest: str, model_path: Path) -> str | None:
    """An earlier run that trained this very model: same records, same train params, same code.

    Re-running it would only spend budget again; if its model is still on disk, unchanged,
    the asset reports that run instead of training.
    """
    rows = ledger.query(
        "SELECT run_id, model_sha256 FROM training_runs WHERE training_set_digest = ?"
        " AND params_digest = ? AND code_version = ? ORDER BY entry_seq DESC LIMIT 1",
        [digest, params_digest, CODE_VERSION],
    ).to_dicts()
    if rows and model_path.exists() and sha256_file(model_path) == rows[0]["model_sha256"]:
        return rows[0]["run_id"]
    return None


def build_train_asset(upstream: str = "screen") -> dg.AssetsDefinition:
    """The train asset, reading every source's records that ``upstream`` wrote."""

    @dg.asset(
        name=STAGE,
        deps=[upstream],
        code_version=CODE_VERSION,
        pool=LEDGER_POOL,
        automation_condition=AFTER_UPSTREAM,
        check_specs=CHECKS,
        kinds={"pytorch", "duckdb"},
        group_name="training",
    )
    def train(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
        """Train a model with DP-SGD (Opacus) on the text records, audit it, write data/train/.

        Refused before training when a training record's privacy budget would be exceeded;
        reports the earlier run instead when records, params and code are all unchanged.
        """
        params, ledger = assay.params(), assay.ledger()
        if params.train.upstream != upstream:
            raise ValueError(f"train.upstream is {params.train.upstream!r}, wired to {upstream!r}")
        run_id = assay.record_run(context)
        records = read_stage(params.data_dir, upstream).filter(pl.col("kind") == TEXT)
        config = run_config(params.train)
        plan = plan_run(records, config)
        model_path = params.data_dir / STAGE / MODEL_FILE
        params_digest = params.digest("train")
        reused = reusable_run(ledger, plan.digest, params_digest, model_path)
        if reused is not None:
            context.log.info(f"records, params and code unchanged: reusing run {reused}")
            cumulative = epsilon_spent(ledger, plan.members["record_id"].to_list())
            trained_in = reused
        else:
            cumulative = commit_budget(ledger, plan, params.train, run_id)
            outcome = execute(plan, config)
            sha = save_model(outcome.dp.model, model_path, config.model, config.model_kwargs)
            model_path.with_name(MODEL_FILE + ".sha256").write_text(f"{sha}  {MODEL_FILE}\n")
            rows = _ledger_rows(outcome, params, model_path, sha, run_id)
            ledger.append_many(rows)
            trained_in = run_id
            context.log.info(
                f"trained on {plan.members.height} records: epsilon {outcome.dp.epsilon:.3f}"
                f" (delta {outcome.dp.delta}); at most {cumulative:.3f} of"
                f" {params.train.epsilon_budget} committed on any one record"
            )
        return dg.MaterializeResult(
            metadata=_metadata(ledger, trained_in, cumulative) | {"reused": reused is not None},
            data_version=dg.DataVersion(_training_run(ledger, trained_in)["model_sha256"]),
            check_results=[
                privacy_budget_check(ledger, trained_in, params.train),
                model_integrity_check(ledger, trained_in, model_path),
                privacy_audit_check(ledger, trained_in, params.train),
            ],
        )

    return train
