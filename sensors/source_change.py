"""Source-change sensor: requests a source's ingest partition when its files change.

Its cursor maps each source to its files' (size, mtime_ns, sha256); a file is re-hashed only
when its size or mtime moved, so an idle tick reads no content.
"""

import json
from pathlib import Path

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

from pipelines.params import load_params
from resources.ingest import list_files
from resources.storage import file_sha256

FileState = dict[str, list]  # name -> [size, mtime_ns, sha256]


def snapshot(root: Path, fmt: str, glob: str | None, previous: FileState) -> FileState:
    """The current state of a source's files, reusing hashes of files that did not move."""
    files, _ = list_files(root, fmt, glob)
    state: FileState = {}
    for file in files:
        stat = file.path.stat()
        old = previous.get(file.name)
        if old and old[0] == stat.st_size and old[1] == stat.st_mtime_ns:
            state[file.name] = old
        else:
            state[file.name] = [stat.st_size, stat.st_mtime_ns, file_sha256(file.path)]
    return state


def state_digest(state: FileState) -> str:
    from hashlib import sha256

    names = sorted(state)
    return sha256("".join(f"{n}\0{state[n][2]}\n" for n in names).encode()).hexdigest()


def changes(old: FileState, new: FileState) -> dict[str, list[str]]:
    return {
        "new": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(n for n in set(new) & set(old) if new[n][2] != old[n][2]),
    }


def build_source_sensor(job: AssetJob, params_path: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="source_change_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def source_change_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Re-ingests a source when any of its files is new, changed or removed."""
        params = load_params(params_path)
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, new_cursor = [], {}
        for source in params.sources:
            root = params.resolve(source.path)
            if not root.exists():
                context.log.warning(f"source {source.id}: {root} does not exist")
                continue
            old = cursor.get(source.id, {})
            state = snapshot(root, source.format, source.glob, old)
            new_cursor[source.id] = state
            diff = changes(old, state)
            if any(diff.values()):
                digest = state_digest(state)
                requests.append(
                    dg.RunRequest(
                        partition_key=source.id,
                        run_key=f"{source.id}:{digest}",
                        tags={"assay/changes": json.dumps({k: len(v) for k, v in diff.items()})},
                    )
                )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor))

    return source_change_sensor
