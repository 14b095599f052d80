"""Hash-list sensor: a new, changed or removed list re-screens every record ever ingested.

Its cursor maps each list file to the sha256 of the list and its sidecar. On the first tick
(no cursor yet) it compares the lists on disk with those the last screening (ingest or
rescreen) used, from the ledger, so a list that changed while the sensor was off is not
missed. The rescreen job then matches the hash cache of every record ever ingested; a new
match among records earlier runs passed is a retroactive incident, purged and tainted.
"""

import json

import dagster as dg
import duckdb
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

from pipelines.params import Params, load_params
from resources.core.ledger import Ledger
from resources.core.storage import file_sha256, json_sha256
from resources.screen.hashlists import directory_fingerprint, list_files
from sensors.base import changes, running_sensor


def lists_differ_from_last_screen(params: Params) -> bool | None:
    """Whether the list files on disk differ from those the last screening used (by sha256);
    None when nothing was screened yet (then there is nothing to re-screen)."""
    if not params.ledger_path.exists():
        return None
    try:
        used = Ledger(params.ledger_path).query(
            "SELECT sha256 FROM hash_lists WHERE run_id = (SELECT run_id FROM hash_lists"
            " ORDER BY entry_seq DESC LIMIT 1)"
        )
    except duckdb.CatalogException:  # a ledger written before the screen stage existed
        return None
    if used.is_empty():
        return None
    on_disk = {file_sha256(p) for p in list_files(params.resolve(params.screen.hashlists_dir))}
    return on_disk != set(used["sha256"])


def build_hashlist_sensor(job: AssetJob, params_path: str) -> dg.SensorDefinition:
    @running_sensor("hashlist_sensor", job)
    def hashlist_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Re-screens everything when a hash list is added, changed or removed."""
        params = load_params(params_path)
        current = directory_fingerprint(params.resolve(params.screen.hashlists_dir))
        digest = json_sha256(current)
        if context.cursor:
            diff = changes(json.loads(context.cursor), current)
            changed = any(diff.values())
        else:
            diff = {"first_tick": sorted(current)}
            changed = bool(lists_differ_from_last_screen(params))
        requests = []
        if changed:
            requests.append(
                dg.RunRequest(
                    run_key=f"hashlists:{digest}",
                    tags={"assay/hashlist_changes": json.dumps(diff)},
                )
            )
            context.log.info(f"hash lists changed: {diff}; re-screening")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return hashlist_sensor
