"""The screen stage: the sanitized corpus, and everything the ledger must know about it.

Every record of the upstream stage is screened against every list. A match is dropped
(harmful_hash_match) and quarantined: the ledger keeps its hashes, source, location and the
matching list entry, never its bytes. A record that cannot be hashed is dropped as unreadable
rather than passed unscreened. The hashes of every record ever screened stay in a cache, and
all of them are matched again on every run, so a list that grew catches records that earlier
runs passed, even ones no longer upstream: those are "retroactive" incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.core.corpus import Corpus
from resources.core.ledger import Ledger, evidence
from resources.core.reasons import Reason
from resources.core.records import IMAGE
from resources.core.storage import Artifact, data_version, read_stage, write_stage
from resources.screen import incidents as inc
from resources.screen.config import ScreenConfig
from resources.screen.hashlists import HashList, load_lists
from resources.screen.matching import (
    CACHE_COLUMNS,
    CHANGED,
    MATCH_COLUMNS,
    Screener,
    hash_with_cache,
    merge_cache,
    original_text_hashes,
    read_hash_cache,
    write_hash_cache,
)

STAGE = "screen"
UPSTREAM = "scrub"
_HASH_COLUMNS = ["sha256", "md5", "sha256_text", "phash", "dhash"]


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
        return data_version({s: a.sha256 for s, a in self.artifacts.items()})


def build_screener(config: ScreenConfig, corpus: Corpus) -> tuple[list[HashList], Screener]:
    lists = load_lists(corpus.resolve(config.hashlists_dir))
    screener = Screener(lists, config.max_distance, config.min_minority_bits)
    return lists, screener


def run(config: ScreenConfig, ledger: Ledger, run_id: str, corpus: Corpus) -> ScreenOutcome:
    """Screen what scrub wrote; see screen_stage."""
    records = read_stage(corpus.data_dir, UPSTREAM)
    return screen_stage(records, config, ledger, run_id, corpus)


def screen_stage(
    records: pl.DataFrame, config: ScreenConfig, ledger: Ledger, run_id: str, corpus: Corpus
) -> ScreenOutcome:
    """Screen, write data/screen/<source>.parquet per source, and append it all to the ledger."""
    data_dir, source_ids = corpus.data_dir, corpus.source_ids
    cache_path = corpus.resolve(config.hash_cache)
    lists, screener = build_screener(config, corpus)
    null_string = pl.lit(None, dtype=pl.String())
    cache = read_hash_cache(cache_path)
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
            ("artifacts", [a.row() for a in artifacts.values()]),
            ("artifact_records", _membership(ledger, artifacts, kept)),
        ],
        run_id,
    )
    write_hash_cache(cache, cache_path)
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
        *MATCH_COLUMNS,
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
    config: ScreenConfig, corpus: Corpus, source_ids: list[str]
) -> tuple[pl.DataFrame, int]:
    """Matches of what the written outputs hold, against the lists as they are on disk now,
    and how many output records could not be hashed (both must be zero).

    The blocking check: independent of the run, it reloads the lists and reads the files back.
    """
    data_dir = corpus.data_dir
    _, screener = build_screener(config, corpus)
    output = read_stage(data_dir, STAGE, source_ids)
    hashes = hash_with_cache(output, read_hash_cache(corpus.resolve(config.hash_cache)))
    originals = original_text_hashes(_ingested(data_dir, output))
    null_string = pl.lit(None, dtype=pl.String())
    checked = pl.concat([hashes.select(CACHE_COLUMNS), originals]).with_columns(
        source_id=null_string, source_key=null_string
    )
    matches = screener.match(checked).unique(
        ["record_id", "hash_type", "list_name", "entry_hash"], keep="first", maintain_order=True
    )
    return matches, hashes.filter(pl.col("hash_error").is_not_null()).height
