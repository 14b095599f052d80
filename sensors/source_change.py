"""Source-change sensor: requests a source's ingest partition when its files change.

Its cursor keeps, per source, each file's (size, mtime_ns, sha256) and a change count. A file
is re-hashed only when its size or mtime moved, so an idle tick reads no content. A source the
cursor has not seen yet is compared with the content hash its last ingest recorded in the
ledger, so a new instance does not re-ingest what `assay run` already did.
"""

import json
from pathlib import Path

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

from pipelines.params import Params, load_params
from resources.core.ledger import Ledger
from resources.core.storage import file_sha256
from resources.ingest.files import content_digest, list_files
from sensors.base import changes as diff_files
from sensors.base import running_sensor

FileState = dict[str, list]  # name -> [size, mtime_ns, sha256]


def snapshot(root: Path, fmt: str, glob: str | None, previous: FileState) -> FileState:
    """The current state of a source's files, reusing hashes of files that did not move."""
    files, _ = list_files(root, fmt, glob)
    state: FileState = {}
    for file in files:
        try:
            stat = file.path.stat()
            old = previous.get(file.name)
            if old and old[0] == stat.st_size and old[1] == stat.st_mtime_ns:
                state[file.name] = old
            else:
                state[file.name] = [stat.st_size, stat.st_mtime_ns, file_sha256(file.path)]
        except FileNotFoundError:
            continue  # removed between listing and reading: the next tick sees it gone
    return state


def state_digest(state: FileState) -> str:
    """The source's content hash, as ingest records it in the ledger."""
    return content_digest({name: entry[2] for name, entry in state.items()})


def changes(old: FileState, new: FileState) -> dict[str, list[str]]:
    """Files new, removed, or whose sha256 changed."""
    return diff_files(old, new, content=lambda entry: entry[2])


def last_ingested_hashes(params: Params) -> dict[str, str]:
    """Each source's content hash at its latest ingest, from the ledger."""
    if not params.ledger_path.exists():
        return {}
    latest = Ledger(params.ledger_path).query(
        "SELECT source_id, content_sha256 FROM sources"
        " QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1"
    )
    return dict(latest.rows())


def build_source_sensor(job: AssetJob, params_path: str) -> dg.SensorDefinition:
    @running_sensor("source_change_sensor", job)
    def source_change_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Re-ingests a source when any of its files is new, changed or removed."""
        params = load_params(params_path)
        cursor = json.loads(context.cursor) if context.cursor else {}
        ingested = None
        requests, new_cursor = [], {}
        for source in params.sources:
            root = params.resolve(source.path)
            if not root.exists():
                context.log.warning(f"source {source.id}: {root} does not exist")
                continue
            seen = cursor.get(source.id, {"files": {}, "changes": 0})
            state = snapshot(root, source.format, source.glob, seen["files"])
            digest = state_digest(state)
            diff = changes(seen["files"], state)
            if source.id not in cursor:
                ingested = last_ingested_hashes(params) if ingested is None else ingested
                if ingested.get(source.id) == digest:
                    diff = changes(state, state)  # already ingested with this content
            count = seen["changes"] + any(diff.values())
            new_cursor[source.id] = {"files": state, "changes": count}
            if any(diff.values()):
                requests.append(
                    dg.RunRequest(
                        partition_key=source.id,
                        # The count keeps a revert to an earlier content from reusing its key.
                        run_key=f"{source.id}:{digest}:{count}",
                        tags={"assay/changes": json.dumps({k: len(v) for k, v in diff.items()})},
                    )
                )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor))

    return source_change_sensor
