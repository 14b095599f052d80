"""What both sensors share: how they run, and how a cursor's files are compared with disk."""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)


def changes(
    old: Mapping[str, Any], new: Mapping[str, Any], content: Callable[[Any], Any] = lambda v: v
) -> dict[str, list[str]]:
    """Names new, removed, and changed (their ``content`` differs) between two snapshots."""
    return {
        "new": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(n for n in set(new) & set(old) if content(new[n]) != content(old[n])),
    }


def running_sensor(name: str, job: AssetJob) -> Callable:
    """@dg.sensor as both sensors are: checked every minute, running from the first start."""
    return dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
