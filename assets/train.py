"""train: DP-SGD on the curated corpus, the privacy budget, the privacy audit, all in the ledger.

The engine is resources/train_stage.py (the run) and resources/privacy_budget.py (the budget,
committed per record before anything is trained); this module wires them and reports.
"""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.execution import AFTER_UPSTREAM, LEDGER_POOL
from pipelines.params import Train
from pipelines.resource import AssayResource
from resources.ledger import Ledger
from resources.privacy_budget import review_budget
from resources.records import TEXT
from resources.storage import read_stage
from resources.train_stage import (
    CODE_VERSION,
    STAGE,
    evaluations,
    model_hashes,
    model_path,
    train_stage,
    training_run,
)

CHECKS = [
    dg.AssetCheckSpec("privacy_budget", asset=STAGE, blocking=True),
    dg.AssetCheckSpec("model_integrity", asset=STAGE, blocking=True),
    dg.AssetCheckSpec("privacy_audit", asset=STAGE),
]


def privacy_budget_check(ledger: Ledger, run_id: str, train: Train) -> dg.AssetCheckResult:
    """Spent epsilon <= target, recomputable from the recorded parameters; total <= budget."""
    review = review_budget(ledger, training_run(ledger, run_id), train.epsilon_budget)
    return dg.AssetCheckResult(
        check_name="privacy_budget",
        passed=not review.problems,
        description=(
            "epsilon spent <= target (recomputed by the accountant); epsilon committed on"
            " any training record, over all runs, <= budget"
        ),
        metadata={
            "epsilon": review.epsilon,
            "epsilon_recomputed": review.epsilon_recomputed,
            "target_epsilon": review.target_epsilon,
            "epsilon_cumulative": review.epsilon_cumulative,
            "epsilon_budget": review.epsilon_budget,
            "problems": "\n".join(review.problems) or "none",
        },
    )


def model_integrity_check(ledger: Ledger, run_id: str, model: Path) -> dg.AssetCheckResult:
    """The model file on disk is the one the ledger recorded, and so is its .sha256 file."""
    recorded, actual, declared = model_hashes(ledger, run_id, model)
    return dg.AssetCheckResult(
        check_name="model_integrity",
        passed=actual == recorded == declared,
        metadata={"recorded": recorded, "actual": str(actual), "sidecar": str(declared)},
    )


def privacy_audit_check(ledger: Ledger, run_id: str, train: Train) -> dg.AssetCheckResult:
    """Warns when the DP model's membership-inference AUC is above params.train.max_mia_auc."""
    dp = evaluations(ledger, run_id)["dp"]
    return dg.AssetCheckResult(
        check_name="privacy_audit",
        passed=dp["mia_auc"] <= train.max_mia_auc,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"membership-inference AUC of the DP model <= {train.max_mia_auc}",
        metadata={"mia_auc": dp["mia_auc"], "canary_exposure_max": dp["canary_exposure_max"]},
    )


def _metadata(ledger: Ledger, run_id: str, cumulative: float) -> dict:
    row = training_run(ledger, run_id)
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
    for kind, ev in sorted(evaluations(ledger, run_id).items()):
        for name in ("heldout_loss", "perplexity", "mia_auc", "mia_tpr_at_1pct_fpr"):
            meta[f"{kind}_{name}"] = ev[name]
        meta[f"{kind}_canary_exposure_max"] = ev["canary_exposure_max"]
    return meta


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
        model = model_path(params.data_dir)
        report = train_stage(records, params.train, params.digest("train"), model, ledger, run_id)
        if report.outcome is None:
            context.log.info(f"records, params and code unchanged: reusing run {report.trained_in}")
        else:
            context.log.info(
                f"trained on {report.plan.members.height} records: epsilon"
                f" {report.outcome.dp.epsilon:.3f} (delta {report.outcome.dp.delta}); at most"
                f" {report.epsilon_cumulative:.3f} of {params.train.epsilon_budget} committed"
                " on any one record"
            )
        trained_in = report.trained_in
        return dg.MaterializeResult(
            metadata=_metadata(ledger, trained_in, report.epsilon_cumulative)
            | {"reused": report.reused},
            data_version=dg.DataVersion(training_run(ledger, trained_in)["model_sha256"]),
            check_results=[
                privacy_budget_check(ledger, trained_in, params.train),
                model_integrity_check(ledger, trained_in, model),
                privacy_audit_check(ledger, trained_in, params.train),
            ],
        )

    return train
