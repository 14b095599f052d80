"""The screen stage: the sanitized corpus, and everything the ledger must know about it.

Every record of the upstream stage is screened against every list. A match is dropped
(harmful_hash_match) and quarantined: the ledger keeps its hashes, source, location and the
matching list entry, never its bytes. A record that cannot be hashed is dropped as unreadable
rather than passed unscreened. The hashes of every record ever screened stay in a cache, and
all of them are matched again on every run, so a list that grew catches records that earlier
runs passed, even ones no longer upstream: those are "retroactive" incidents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from resources import incidents as inc
from resources.hashlists import DHASH, PHASH, HashList, load_lists
from resources.ledger import Ledger, evidence
from resources.reasons import Reason
from resources.records import IMAGE
from resources.screening import (
    CACHE_COLUMNS,
    CHANGED,
    Screener,
    hash_with_cache,
    merge_cache,
    original_text_hashes,
    read_hash_cache,
    write_hash_cache,
)
from resources.storage import Artifact, read_stage, write_stage

STAGE = "screen"
_HASH_COLUMNS = ["sha256", "md5", "sha256_text", "phash", "dhash"]


@dataclass(frozen=True)
class ScreenSettings:
    lists_dir: Path
    cache_path: Path
    max_distance: dict[str, int] = field(default_factory=lambda: {PHASH: 10, DHASH: 8})
    min_minority_bits: dict[str, int] = field(default_factory=lambda: {DHASH: 12})


@dataclass
class ScreenOutcome:
    records_in: int
    records_out: int
    dropped: dict[str, int]
    matched_records: int
    rescreened: int
    incidents: pl.DataFrame
    lists: list[dict]
    artifacts: dict[str, Artifact]

    @property
    def data_version(self) -> str:
        joined = "".join(f"{s}:{a.sha256}\n" for s, a in sorted(self.artifacts.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


def build_screener(settings: ScreenSettings) -> tuple[list[HashList], Screener]:
    lists = load_lists(settings.lists_dir)
    screener = Screener(lists, settings.max_distance, settings.min_minority_bits)
    return lists, screener


def screen_stage(
    records: pl.DataFrame,
    source_ids: list[str],
    data_dir: Path,
    settings: ScreenSettings,
    ledger: Ledger,
    run_id: str,
) -> ScreenOutcome:
    """Screen, write data/screen/<source>.parquet per source, and append it all to the ledger."""
    lists, screener = build_screener(settings)
    null_string = pl.lit(None, dtype=pl.String())
    cache = read_hash_cache(settings.cache_path)
    hashes = hash_with_cache(records, cache)
    originals = original_text_hashes(_ingested(data_dir, records))
    # The cache keeps a text's original hashes (what record_id addresses), not the scrubbed.
    cache = merge_cache(merge_cache(cache, hashes), originals.with_columns(hash_error=null_string))
    # Everything ever screened, once per record: current records (as their files are now, so a
    # swapped-in harmful file still matches) and those only the cache remembers (earlier
    # outputs), so a grown list reaches both.
    current = hashes.select(CACHE_COLUMNS)
    remembered = cache.filter(~pl.col("record_id").is_in(current["record_id"].implode()))
    everything = pl.concat([current, remembered]).unique("record_id", maintain_order=True)
    # A text is matched as it is now and as ingest read it: a list names the original.
    screened = pl.concat([everything, originals])
    matches = screener.match(screened.with_columns(source_id=null_string, source_key=null_string))
    matches = matches.unique(
        ["record_id", "hash_type", "list_name", "entry_hash"], keep="first", maintain_order=True
    )
    matched_ids = matches["record_id"].unique()

    drops = _drops(records, hashes, matches)
    kept = records.join(
        drops.select("source_id", "source_key"), on=["source_id", "source_key"], how="anti"
    )
    ledger.record_stage(STAGE, run_id, records, kept, drops)

    ids = matched_ids.to_list()
    passes = inc.earlier_passes(ledger, ids)
    occurrences = pl.concat(
        [
            inc.known_occurrences(ledger, ids),
            records.filter(pl.col("record_id").is_in(matched_ids.implode())).select(
                "record_id", "source_id", "source_key"
            ),
        ]
    )
    known = set(ledger.query("SELECT incident_id FROM incidents")["incident_id"])
    new_incidents = inc.build_incidents(
        matches,
        pl.concat([originals, everything]).unique("record_id", maintain_order=True),
        occurrences,
        passes,
        inc.later_stage_artifacts(ledger),
        known,
    )

    artifacts = {
        source: write_stage(kept.filter(pl.col("source_id") == source), data_dir, STAGE, source)
        for source in sorted(set(source_ids) | set(records["source_id"]))
    }
    # A source with nothing upstream still gets its (empty) output and a zero count, so every
    # declared source is accounted for at every stage.
    empty_sources = [
        {"stage": STAGE, "source_id": s, "records_in": 0, "records_out": 0, "dropped": 0}
        for s in sorted(set(artifacts) - set(records["source_id"]))
    ]
    ledger.append_many(
        [
            ("stage_counts", empty_sources),
            ("hash_lists", _list_rows(lists, screener)),
            ("screen_matches", matches.drop("source_id", "source_key")),
            ("quarantine", _quarantine(records, hashes, matches)),
            ("incidents", new_incidents),
            ("artifacts", _artifact_rows(artifacts, kept)),
            ("artifact_records", _membership(ledger, artifacts, kept)),
        ],
        run_id,
    )
    write_hash_cache(cache, settings.cache_path)
    counts = drops.group_by("reason").len()
    return ScreenOutcome(
        records_in=records.height,
        records_out=kept.height,
        dropped=dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True)),
        matched_records=len(ids),
        rescreened=cache.height,
        incidents=new_incidents,
        lists=[h.describe() for h in lists],
        artifacts=artifacts,
    )


def _ingested(data_dir: Path, records: pl.DataFrame) -> pl.DataFrame:
    """The texts of these records as ingest read them (before any stage rewrote them)."""
    sources = sorted(set(records["source_id"]))
    ingested = read_stage(data_dir, "ingest", sources)
    return ingested.filter(pl.col("record_id").is_in(records["record_id"].implode()))


def _drops(records: pl.DataFrame, hashes: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    best = (
        matches.sort("distance", "list_name", "entry_line")
        .group_by("record_id", maintain_order=True)
        .agg(pl.all().first(), pl.len().alias("entries_matched"))
    )
    harmful = records.select("record_id", "source_id", "source_key").join(
        best.drop("source_id", "source_key"), on="record_id"
    )
    harmful_rows = harmful.select(
        "record_id",
        "source_id",
        "source_key",
        pl.lit(str(Reason.HARMFUL_HASH_MATCH)).alias("reason"),
        pl.Series(
            [
                evidence(
                    list=r["list_name"],
                    list_version=r["list_version"],
                    list_sha256=r["list_sha256"],
                    hash_type=r["hash_type"],
                    distance=r["distance"],
                    entry_line=r["entry_line"],
                    entries_matched=r["entries_matched"],
                    incident_id=inc.incident_id(r["record_id"], r["list_name"]),
                )
                for r in harmful.to_dicts()
            ],
            dtype=pl.String(),
        ).alias("evidence"),
    )
    unhashable = hashes.filter(
        pl.col("hash_error").is_not_null() & ~pl.col("record_id").is_in(best["record_id"].implode())
    )
    changed = pl.col("hash_error") == CHANGED
    unreadable_rows = unhashable.select(
        "record_id",
        "source_id",
        "source_key",
        pl.when(changed)
        .then(pl.lit(str(Reason.CONTENT_CHANGED)))
        .otherwise(pl.lit(str(Reason.UNREADABLE)))
        .alias("reason"),
        pl.Series(
            [evidence(detail=f"held back at screen: {e}") for e in unhashable["hash_error"]],
            dtype=pl.String(),
        ).alias("evidence"),
    )
    return pl.concat([harmful_rows, unreadable_rows])


def _quarantine(records: pl.DataFrame, hashes: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    """One row per matched occurrence and matching list: hashes, location, entry. No bytes."""
    best = (
        matches.sort("distance", "entry_line")
        .group_by("record_id", "list_name", maintain_order=True)
        .agg(pl.all().first())
        .drop("source_id", "source_key")
    )
    located = hashes.unique(["source_id", "source_key"]).select(
        "record_id",
        "source_id",
        "source_key",
        "kind",
        pl.when(pl.col("kind") == IMAGE)
        .then(pl.col("image_path"))
        .otherwise(pl.col("source_id") + ":" + pl.col("source_key"))
        .alias("location"),
        *_HASH_COLUMNS,
    )
    quarantined = located.join(best, on="record_id")
    return quarantined.select(
        "record_id",
        "source_id",
        "source_key",
        "kind",
        "location",
        *_HASH_COLUMNS,
        "list_name",
        "list_version",
        "list_sha256",
        "hash_type",
        "entry_hash",
        "entry_label",
        "distance",
    )


def _list_rows(lists: list[HashList], screener: Screener) -> list[dict]:
    low = screener.low_information
    rows = []
    for hash_list in lists:
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


def _artifact_rows(artifacts: dict[str, Artifact], kept: pl.DataFrame) -> list[dict]:
    return [
        {
            "path": str(a.path),
            "sha256": a.sha256,
            "size_bytes": a.size_bytes,
            "stage": STAGE,
            "source_id": source,
            "records": kept.filter(pl.col("source_id") == source).height,
        }
        for source, a in artifacts.items()
    ]


def _membership(ledger: Ledger, artifacts: dict[str, Artifact], kept: pl.DataFrame) -> pl.DataFrame:
    """Which records each new output holds; an output identical to a recorded one adds nothing."""
    shas = [a.sha256 for a in artifacts.values()]
    recorded = set(
        ledger.query(
            "SELECT DISTINCT artifact_sha256 FROM artifact_records"
            " WHERE stage = ? AND list_contains(?, artifact_sha256)",
            [STAGE, shas],
        )["artifact_sha256"]
    )
    frames = [
        kept.filter(pl.col("source_id") == source)
        .select("source_id", "record_id")
        .unique(maintain_order=True)
        .with_columns(pl.lit(a.sha256).alias("artifact_sha256"), pl.lit(STAGE).alias("stage"))
        for source, a in artifacts.items()
        if a.sha256 not in recorded
    ]
    schema = {"source_id": pl.String(), "record_id": pl.String()}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def screen_output_matches(
    data_dir: Path, source_ids: list[str], settings: ScreenSettings
) -> tuple[pl.DataFrame, int]:
    """Matches of what the written outputs hold, against the lists as they are on disk now,
    and how many output records could not be hashed (both must be zero).

    The blocking check: independent of the run, it reloads the lists and reads the files back.
    """
    _, screener = build_screener(settings)
    output = read_stage(data_dir, STAGE, source_ids)
    hashes = hash_with_cache(output, read_hash_cache(settings.cache_path))
    originals = original_text_hashes(_ingested(data_dir, output))
    null_string = pl.lit(None, dtype=pl.String())
    checked = pl.concat([hashes.select(CACHE_COLUMNS), originals]).with_columns(
        source_id=null_string, source_key=null_string
    )
    matches = screener.match(checked).unique(
        ["record_id", "hash_type", "list_name", "entry_hash"], keep="first", maintain_order=True
    )
    return matches, hashes.filter(pl.col("hash_error").is_not_null()).height
