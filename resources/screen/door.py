"""Screening at the door: ingest matches every item against every list before writing it.

``Door.screen`` takes a batch of freshly read records and splits it: the records that pass,
and for the matched ones (every occurrence) the drops, quarantine rows and incidents. Only
hashes leave this module; a matched record's text or bytes reach no output, signature store
or cache. A record that cannot be hashed (its file changed or cannot be decoded) is dropped
rather than passed unscreened. ``Door.open`` fails closed: no usable list is an error unless
params say no list is wanted (hashlists.load_lists).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.core.corpus import Corpus
from resources.core.engine import LOCAL, EngineConfig
from resources.core.ledger import evidence
from resources.core.reasons import Reason
from resources.core.records import DROP_SCHEMA, IMAGE
from resources.core.storage import file_sha256, read_stage
from resources.screen import incidents as inc
from resources.screen.config import ScreenConfig
from resources.screen.hashlists import HashList, load_lists
from resources.screen.matching import (
    CHANGED,
    MATCH_COLUMNS,
    MATCH_SCHEMA,
    Screener,
    hash_records,
    hash_with_cache,
    read_hash_cache,
)

_ROW = "_row"


@dataclass
class Screened:
    """One batch after the door: what passes, and what the ledger learns about the rest."""

    passed: list[bool]
    """Aligned with the batch's rows: True for a record that may be written."""
    hashes: pl.DataFrame
    """HASH_SCHEMA, every row of the batch: what the hash cache keeps (no content)."""
    matches: pl.DataFrame
    """MATCH_SCHEMA, every (occurrence, list entry) pair."""
    drops: pl.DataFrame
    """DROP_SCHEMA: harmful_hash_match per matched occurrence, unreadable/content_changed."""
    quarantine: pl.DataFrame
    """One row per matched occurrence and list: hashes, location, entry (ledger quarantine)."""
    incidents: pl.DataFrame
    """incidents.INCIDENT_SCHEMA, kind new, those not reported before."""


@dataclass
class Door:
    lists: list[HashList]
    screener: Screener
    base_dir: Path
    engine: EngineConfig = LOCAL
    """Where the records are hashed; matching runs here, against the lists loaded here."""

    @classmethod
    def open(cls, config: ScreenConfig, corpus: Corpus, engine: EngineConfig = LOCAL) -> Door:
        """Load every list (raises HashListError when there is none and one is required)."""
        lists = load_lists(corpus.resolve(config.hashlists_dir), required=config.require_lists)
        screener = Screener(lists, config.max_distance, config.min_minority_bits)
        return cls(lists, screener, corpus.root, engine)

    def list_rows(self) -> list[dict]:
        """The ledger's hash_lists rows: which lists (name, version, sha256) screened."""
        low = self.screener.low_information
        rows = []
        for hash_list in self.lists:
            described = hash_list.describe()
            rows.append(
                {
                    **{k: described[k] for k in ("name", "version", "provider", "sha256", "path")},
                    "entries": described["entries"],
                    "entries_by_type": evidence(**described["entries_by_type"]),
                    "low_information": low.filter(pl.col("list_name") == hash_list.name).height,
                }
            )
        return rows

    def screen(self, records: pl.DataFrame, known_ids: set[str]) -> Screened:
        """Hash and match every record of the batch (RECORD_SCHEMA); see Screened."""
        hashes = hash_records(records, self.base_dir, engine=self.engine)
        # Match by row, not by source_key: a source's ids need not be unique.
        rows = pl.Series(_ROW, [str(i) for i in range(records.height)], dtype=pl.String())
        by_row = hashes.with_columns(rows.alias("source_key"))
        matches = self.screener.match(by_row)
        matched_rows = {int(r) for r in matches["source_key"]}
        matches = _relocate(matches, records)
        unhashable = {
            i for i, error in enumerate(hashes["hash_error"]) if error and i not in matched_rows
        }
        occurrences = _occurrences(hashes)
        best = inc.best_per_list(matches)
        incidents = inc.build_incidents(best, occurrences, inc.NEW, known_ids)
        return Screened(
            passed=[i not in matched_rows and i not in unhashable for i in range(records.height)],
            hashes=hashes,
            matches=matches,
            drops=pl.concat([_harmful_drops(best), _unhashable_drops(hashes, unhashable)]),
            quarantine=_quarantine(best, occurrences),
            incidents=incidents,
        )


def _relocate(matches: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """Put each match's real source_key back in place of its row number."""
    keys = records["source_key"]
    return matches.with_columns(
        pl.Series("source_key", [keys[int(r)] for r in matches["source_key"]], dtype=pl.String())
    ).select(list(MATCH_SCHEMA))


def _occurrences(hashes: pl.DataFrame) -> pl.DataFrame:
    location = (
        pl.when(pl.col("kind") == IMAGE)
        .then(pl.col("image_path"))
        .otherwise(pl.col("source_id") + ":" + pl.col("source_key"))
    )
    return hashes.select(*inc.OCCURRENCE, "kind", location.alias("location"), *inc.HASH_COLUMNS)


def _harmful_drops(best: pl.DataFrame) -> pl.DataFrame:
    """One drop per matched occurrence (its nearest list), the incident ids as evidence.

    The drop carries no record_id: the quarantine and incident rows are the only ledger rows
    that name a listed record.
    """
    nearest = best.sort("distance", "list_name").group_by(inc.OCCURRENCE, maintain_order=True)
    rows = []
    for _, group in nearest:
        first = group.row(0, named=True)
        ids = [
            inc.incident_id(r["record_id"], r["list_name"], r["source_id"], r["source_key"])
            for r in group.iter_rows(named=True)
        ]
        rows.append(
            {
                "record_id": None,
                "source_id": first["source_id"],
                "source_key": first["source_key"],
                "reason": str(Reason.HARMFUL_HASH_MATCH),
                "evidence": evidence(
                    list=first["list_name"],
                    list_version=first["list_version"],
                    hash_type=first["hash_type"],
                    distance=first["distance"],
                    entry_line=first["entry_line"],
                    lists_matched=group.height,
                    incident_ids=ids,
                ),
            }
        )
    return pl.DataFrame(rows, schema=DROP_SCHEMA)


def _unhashable_drops(hashes: pl.DataFrame, rows: set[int]) -> pl.DataFrame:
    picked = [hashes.row(i, named=True) for i in sorted(rows)]
    return pl.DataFrame(
        [
            {
                "record_id": None,
                "source_id": row["source_id"],
                "source_key": row["source_key"],
                "reason": str(
                    Reason.CONTENT_CHANGED if row["hash_error"] == CHANGED else Reason.UNREADABLE
                ),
                "evidence": evidence(detail=f"cannot be screened: {row['hash_error']}"),
            }
            for row in picked
        ],
        schema=DROP_SCHEMA,
    )


def _quarantine(best: pl.DataFrame, occurrences: pl.DataFrame) -> pl.DataFrame:
    located = occurrences.unique(inc.OCCURRENCE)
    return best.join(located, on=inc.OCCURRENCE, how="inner").select(
        *inc.OCCURRENCE, "kind", "location", *inc.HASH_COLUMNS, *MATCH_COLUMNS
    )


def move_to_quarantine(
    quarantine: pl.DataFrame, source_format: str, root: Path, quarantine_dir: Path
) -> list[dict]:
    """Move each matched whole-file item (image, txt) into quarantine_dir/<source_id>/.

    The folders are made 0700. A line of a jsonl/csv/parquet file is not a file of its own
    and stays (the incident names it). Returns the ledger's quarantine_moves rows.
    """
    if source_format not in ("image", "txt") or quarantine.is_empty():
        return []
    moves = []
    for key, group in quarantine.group_by("source_id", "source_key", maintain_order=True):
        source_id, source_key = key
        origin = root / source_key if root.is_dir() else root
        if not origin.is_file():
            continue
        target = quarantine_dir / source_id / source_key
        for folder in (quarantine_dir, quarantine_dir / source_id, *target.parents):
            if folder.is_relative_to(quarantine_dir):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)
        digest = file_sha256(origin)
        shutil.move(origin, target)
        ids = [
            inc.incident_id(r["record_id"], r["list_name"], source_id, source_key)
            for r in group.iter_rows(named=True)
        ]
        moves.append(
            {
                "source_id": source_id,
                "source_key": source_key,
                "from_path": str(origin),
                "to_path": str(target),
                "sha256": digest,
                "incident_ids": evidence(ids=ids),
            }
        )
    return moves


def listed_in_output(
    config: ScreenConfig,
    corpus: Corpus,
    stage: str,
    source_ids: list[str],
    engine: EngineConfig = LOCAL,
) -> tuple[pl.DataFrame, int]:
    """Matches of what a stage wrote, against the lists on disk now, and how many of its
    records could not be hashed (both must be zero): the blocking check, independent of the
    run that wrote the files. Images' hashes come from the cache when their bytes still hash
    to their record_id; texts are hashed as written."""
    door = Door.open(config, corpus)
    output = read_stage(corpus.data_dir, stage, source_ids)
    cache = read_hash_cache(corpus.resolve(config.hash_cache))
    hashes = hash_with_cache(output, cache, corpus.root, engine)
    return door.screener.match(hashes), hashes.filter(pl.col("hash_error").is_not_null()).height
