"""rescreen: a changed hash list matched against every record ever ingested; purge and taint.

Run by the hash-list sensor and the nightly schedule (pipelines/jobs.py rescreen_job). It is
no stage of the chain: it rewrites the chain's outputs without what a list now names
(resources/screen/rescreen.py), then reports each purged ingest partition as materialized
with its new data version, so the stages after ingest re-run by their eager automation (and
dedup lets the next copy of a purged survivor take its place).
"""

from pathlib import Path

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from assets.metadata import table
from pipelines.params import Params
from resources.core.storage import data_version
from resources.release.keys import key_path
from resources.release.revocation import revoke_holders
from resources.screen import rescreen

NAME = "rescreen"
INGEST = "ingest"


def build_rescreen_asset(params: Params) -> dg.AssetsDefinition:
    @stage_asset(
        params,
        name=NAME,
        upstream=None,
        code_version="rescreen-1",
        with_conservation=False,
        group="screening",
    )
    def rescreen_asset(stage: StageRun) -> StageResult:
        """Match the hash cache of every record ever ingested against the lists on disk.

        A record an earlier run passed and a list now names is a retroactive incident (one
        per occurrence and list); every artifact under data/ holding it is rewritten without
        it (ledger purges: path, old and new sha256, record ids, incident ids), and every
        training run that used it is tainted (ledger tainted_runs), and every release holding
        it is revoked (ledger revocations, data/release/revocations.json).
        """
        params = stage.params
        outcome = rescreen.run(params.screen, stage.ledger, stage.run_id, params.corpus())
        key_file = key_path(params.root, params.release.signing_key)
        revoked = revoke_holders(stage.ledger, outcome.matched_records, key_file, stage.run_id)
        for purge in outcome.purges:
            _announce(stage.context, params, purge)
        return StageResult(
            metadata={
                "cached_records": outcome.cached_records,
                "matched_records": len(outcome.matched_records),
                "new_incidents": outcome.incidents.height,
                "purged_records": table(["record_id"], [[r] for r in outcome.purged_record_ids]),
                "purged_artifacts": table(
                    ["path", "old sha256", "new sha256"],
                    [[p["path"], p["old_sha256"], p["new_sha256"]] for p in outcome.purges],
                ),
                "tainted_runs": table(["training run"], [[r] for r in outcome.tainted_runs]),
                "revoked_releases": table(["release"], [[r] for r in revoked]),
            },
            data_version=data_version({"matched": ",".join(outcome.matched_records)}),
            row_count=None,
        )

    return rescreen_asset


def _announce(context: dg.AssetExecutionContext, params: Params, purge: dict) -> None:
    """An ingest output rewritten by the purge is a new version of that ingest partition."""
    path = Path(purge["path"])
    source_id = path.stem
    if path.parent != params.data_dir / INGEST or source_id not in params.source_ids:
        return
    context.log_event(
        dg.AssetMaterialization(
            asset_key=INGEST,
            partition=source_id,
            description="purged by rescreen",
            metadata={
                "sha256": purge["new_sha256"],
                "purged_from": purge["old_sha256"],
                "dagster/data_version": data_version({source_id: purge["new_sha256"]}),
            },
        )
    )
