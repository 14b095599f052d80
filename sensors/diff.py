"""What both sensors compare: the files named in a cursor against the files on disk now."""

from collections.abc import Callable, Mapping
from typing import Any


def changes(
    old: Mapping[str, Any], new: Mapping[str, Any], content: Callable[[Any], Any] = lambda v: v
) -> dict[str, list[str]]:
    """Names new, removed, and changed (their ``content`` differs) between two snapshots."""
    return {
        "new": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(n for n in set(new) & set(old) if content(new[n]) != content(old[n])),
    }
