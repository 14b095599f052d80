"""The persisted accepted set, and which sources an incremental run must process.

The store (data/dedup/_signatures/) holds one row per accepted record (ACCEPTED_SCHEMA:
ids, exact key, MinHash signature or pHash) and a manifest: a digest of everything that
decides survivors (dedup settings, survivor order, policy, each source's provenance) and a
digest of each source's records. A run whose settings digest matches processes only sources
that are new or whose records changed, against the accepted rows of the unchanged ones;
otherwise it processes everything.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from resources.core.storage import pairs_sha256, write_parquet, write_text
from resources.dedup.engine import ACCEPTED_SCHEMA

ACCEPTED_FILE = "accepted.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    settings_digest: str
    sources: dict[str, str] = field(default_factory=dict)
    """source_id -> digest of its (source_key, record_id) rows"""


@dataclass(frozen=True)
class Plan:
    full: bool
    process: list[str]
    """sources to dedup in this run"""
    carried: list[str]
    """sources whose accepted rows stand and are deduplicated against"""
    removed: list[str]
    """sources in the store that are no longer declared"""


def source_digests(records: pl.DataFrame) -> dict[str, str]:
    """source_id -> sha256 over its sorted (source_key, record_id) pairs."""
    pairs = records.select("source_id", "source_key", "record_id")
    return {
        str(source_id): pairs_sha256(zip(part["source_key"], part["record_id"], strict=True))
        for (source_id,), part in pairs.group_by("source_id")
    }


def plan_run(
    current: dict[str, str],
    manifest: Manifest | None,
    settings_digest: str,
    incremental: bool,
) -> Plan:
    """Which sources to process now, given the current per-source digests."""
    if not incremental or manifest is None or manifest.settings_digest != settings_digest:
        return Plan(full=True, process=sorted(current), carried=[], removed=[])
    carried = sorted(s for s, d in current.items() if manifest.sources.get(s) == d)
    process = sorted(s for s in current if s not in carried)
    removed = sorted(s for s in manifest.sources if s not in current)
    return Plan(full=False, process=process, carried=carried, removed=removed)


class SignatureStore:
    """Accepted rows and manifest under one directory; each file replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def load(self) -> tuple[pl.DataFrame, Manifest | None]:
        manifest_path = self.directory / MANIFEST_FILE
        accepted_path = self.directory / ACCEPTED_FILE
        if not manifest_path.exists() or not accepted_path.exists():
            return pl.DataFrame(schema=ACCEPTED_SCHEMA), None
        raw = json.loads(manifest_path.read_text())
        manifest = Manifest(settings_digest=raw["settings_digest"], sources=raw["sources"])
        return pl.read_parquet(accepted_path).select(list(ACCEPTED_SCHEMA)), manifest

    def save(self, accepted: pl.DataFrame, manifest: Manifest) -> None:
        write_parquet(accepted.select(list(ACCEPTED_SCHEMA)), self.directory / ACCEPTED_FILE)
        body = {"settings_digest": manifest.settings_digest, "sources": manifest.sources}
        write_text(json.dumps(body, sort_keys=True, indent=1), self.directory / MANIFEST_FILE)
