"""release: the gate decides from the ledger; a PASSED release is written and signed.

The engine is resources/release/ (stage.py); this module reports. A blocked release is
recorded and signed (a FAILED verdict) and then fails the asset, naming every violation.
"""

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from pipelines.params import Params
from resources.core.storage import file_sha256
from resources.release.stage import CODE_VERSION, STAGE, VERDICT, run

PREPROCESSING_SECTIONS = ("policy", "ingest", "dedup", "pii", "screen")


def settings(params: Params) -> dict:
    """The params sections of the stages before training, with their digests."""
    return {
        name: {"digest": params.digest(name), "values": params.model_dump(mode="json")[name]}
        for name in PREPROCESSING_SECTIONS
    }


def build_release_asset(params: Params) -> dg.AssetsDefinition:
    @stage_asset(
        params,
        name=STAGE,
        upstream="train",
        code_version=CODE_VERSION,
        with_conservation=False,
        kinds={"json", "duckdb"},
        group="release",
    )
    def release(stage: StageRun) -> StageResult:
        """Evaluate the release policy on the ledger's facts; write and sign data/release/<id>/.

        A blocked release gets a signed FAILED verdict (no model, no PASSED verdict) and the
        asset fails, naming every rule that failed and why.
        """
        outcome = run(
            stage.params.release,
            stage.ledger,
            stage.run_id,
            stage.params.corpus(),
            settings=settings(stage.params),
        )
        violations = [f"{v['rule']}: {v['reason']}" for v in outcome.verdict.violations]
        if not outcome.verdict.passed:
            raise dg.Failure(
                description=f"release {outcome.release_id} blocked: " + "; ".join(violations),
                metadata={
                    "release_id": outcome.release_id,
                    "path": str(outcome.path),
                    "auditor_page": str(outcome.auditor_page),
                },
            )
        training = outcome.facts["training_run"]
        return StageResult(
            metadata={
                "release_id": outcome.release_id,
                "status": outcome.verdict.status,
                "path": dg.MetadataValue.path(str(outcome.path)),
                "auditor_page": dg.MetadataValue.path(str(outcome.auditor_page)),
                "training_run_id": training["run_id"],
                "model_sha256": training["model_sha256"],
            },
            data_version=file_sha256(outcome.path / VERDICT),
            row_count=training.get("train_records"),
        )

    return release
