"""train: DP-SGD on the curated corpus, the privacy budget, the privacy audit, all in the ledger.

The engine is resources/train/ (stage.py runs it; budget.py commits the budget per record
before anything is trained); this module reports and checks.
"""

from pathlib import Path

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from assets.metadata import table
from pipelines.params import Params
from resources.core.ledger import Ledger
from resources.train.budget import review_budget
from resources.train.config import TrainConfig
from resources.train.stage import (
    CODE_VERSION,
    STAGE,
    Skipped,
    evaluations,
    model_hashes,
    model_path,
    run,
    training_run,
)

CHECKS = [
    dg.AssetCheckSpec(
        "privacy_budget",
        asset=STAGE,
        blocking=True,
        description="epsilon spent <= target; epsilon committed on any record <= the budget",
    ),
    dg.AssetCheckSpec(
        "model_integrity",
        asset=STAGE,
        blocking=True,
        description="the model file on disk is the one the ledger recorded",
    ),
    dg.AssetCheckSpec(
        "privacy_audit",
        asset=STAGE,
        description="the DP model's membership-inference AUC is at most train.max_mia_auc",
    ),
]


def privacy_budget_check(ledger: Ledger, run_id: str, train: TrainConfig) -> dg.AssetCheckResult:
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
        description="sha256 of the model file = the ledger's = its .sha256 sidecar's",
        metadata={"recorded": recorded, "actual": str(actual), "sidecar": str(declared)},
    )


def privacy_audit_check(ledger: Ledger, run_id: str, train: TrainConfig) -> dg.AssetCheckResult:
    """Warns when the DP model's membership-inference AUC is above params.train.max_mia_auc."""
    dp = evaluations(ledger, run_id)["dp"]
    return dg.AssetCheckResult(
        check_name="privacy_audit",
        passed=dp["mia_auc"] <= train.max_mia_auc,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"membership-inference AUC of the DP model <= {train.max_mia_auc}",
        metadata={"mia_auc": dp["mia_auc"], "canary_exposure_max": dp["canary_exposure_max"]},
    )


EVALUATED = ("heldout_loss", "perplexity", "mia_auc", "mia_tpr_at_1pct_fpr", "canary_exposure_max")


def _metadata(ledger: Ledger, run_id: str, cumulative: float) -> dict:
    """The headline figures flat; the privacy accounting and the evaluations as tables."""
    row = training_run(ledger, run_id)
    privacy = [
        ("epsilon (this run)", row["epsilon"]),
        ("delta", row["delta"]),
        ("epsilon committed, most on any record", cumulative),
        ("noise multiplier", row["noise_multiplier"]),
        ("sample rate", row["sample_rate"]),
        ("steps", row["steps"]),
        ("privacy unit", row["privacy_unit"]),
        ("units", row["units"]),
    ]
    evaluated = sorted(evaluations(ledger, run_id).items())
    return {
        "model_sha256": row["model_sha256"],
        "path": dg.MetadataValue.path(row["path"]),
        "training_run_id": run_id,
        "training_set_digest": row["training_set_digest"],
        "train_records": row["train_records"],
        "heldout_records": row["heldout_records"],
        "epsilon": row["epsilon"],
        "epsilon_cumulative": cumulative,
        "dp_mia_auc": dict(evaluated).get("dp", {}).get("mia_auc"),
        "train_seconds": row["train_seconds"],
        "privacy": table(["", "value"], privacy),
        "evaluations": table(
            ["model", *EVALUATED], [[kind, *(ev[n] for n in EVALUATED)] for kind, ev in evaluated]
        ),
    }


def skipped_result(skip: Skipped) -> StageResult:
    """No model: nothing was spent, nothing is on disk to check, nothing to audit."""
    checks = [
        dg.AssetCheckResult(
            check_name=spec.name,
            passed=True,
            description=f"skipped: {skip.detail}",
            metadata={"skipped": True, "skip_reason": skip.reason},
        )
        for spec in CHECKS
    ]
    return StageResult(
        metadata={"skipped": True, "skip_reason": skip.reason, "skip_detail": skip.detail},
        data_version=f"skipped:{skip.reason}",
        row_count=0,
        checks=checks,
    )


def build_train_asset(params: Params) -> dg.AssetsDefinition:
    """The train asset, reading every source's records that train.upstream wrote."""
    upstream = params.train.upstream

    @stage_asset(
        params,
        name=STAGE,
        upstream=upstream,
        code_version=CODE_VERSION,
        checks=CHECKS,
        with_conservation=False,
        kinds={"pytorch", "duckdb"},
        group="training",
    )
    def train(stage: StageRun) -> StageResult:
        """Train a model with DP-SGD (Opacus) on the text records, audit it, write data/train/.

        Refused before training when a training record's privacy budget would be exceeded;
        reports the earlier run instead when records, params and code are all unchanged.
        """
        config, ledger, log = stage.params.train, stage.ledger, stage.context.log
        if config.upstream != upstream:
            raise ValueError(f"train.upstream is {config.upstream!r}, wired to {upstream!r}")
        report = run(config, ledger, stage.run_id, stage.params.corpus())
        if isinstance(report, Skipped):
            log.info(f"train skipped: {report.detail}")
            return skipped_result(report)
        if report.outcome is None:
            log.info(f"records, params and code unchanged: reusing run {report.trained_in}")
        else:
            log.info(
                f"trained on {report.plan.members.height} records: epsilon"
                f" {report.outcome.dp.epsilon:.3f} (delta {report.outcome.dp.delta}); at most"
                f" {report.epsilon_cumulative:.3f} of {config.epsilon_budget} committed"
                " on any one record"
            )
        trained_in = report.trained_in
        model = model_path(stage.params.data_dir)
        return StageResult(
            metadata=_metadata(ledger, trained_in, report.epsilon_cumulative)
            | {"reused": report.reused},
            data_version=training_run(ledger, trained_in)["model_sha256"],
            row_count=report.plan.members.height,
            checks=[
                privacy_budget_check(ledger, trained_in, config),
                model_integrity_check(ledger, trained_in, model),
                privacy_audit_check(ledger, trained_in, config),
            ],
        )

    return train
