"""Ingest engine: list a source's files, read them, apply the source policy, screen, batch.

Batches are DataFrames of bounded size, so a source of any size streams through in flat memory.
Every batch passes the door (resources/screen/door.py) before anything is written: a record
matching a known-harmful hash list is dropped and quarantined (hashes only), never written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

import polars as pl

from resources.core.corpus import Corpus, Policy, Source
from resources.core.engine import LOCAL, EngineConfig
from resources.core.ledger import Ledger, evidence
from resources.core.reasons import Reason
from resources.core.records import DROP_SCHEMA, IMAGE, RECORD_SCHEMA, record_id
from resources.core.storage import Artifact, artifact, file_sha256, parquet_sink
from resources.ingest.config import IngestConfig
from resources.ingest.files import SourceFile, content_digest, list_files
from resources.ingest.readers import READERS, Item, ReadSpec, reject
from resources.ingest.staging import StagedRows
from resources.screen.config import ScreenConfig
from resources.screen.door import Door, Screened, move_to_quarantine
from resources.screen.incidents import known_incident_ids
from resources.screen.matching import add_to_hash_cache
from resources.scrub.keys import protect_keys

STAGE = "ingest"


@dataclass
class Batch:
    """Records and drops from one stretch of a source, both as DataFrames."""

    records: pl.DataFrame
    drops: pl.DataFrame
    sizes: list[int]


def read_items(files: Iterable[SourceFile], fmt: str, spec: ReadSpec) -> Iterator[Item]:
    reader = READERS[fmt]
    for file in files:
        yield from reader(file.path, file.name, spec)


def apply_policy(items: Iterable[Item], refusal: tuple[Reason, str] | None) -> Iterator[Item]:
    """Turn every readable item into a drop when the source itself is refused."""
    if refusal is None:
        yield from items
        return
    reason, detail = refusal
    for item in items:
        yield item if item.reason else reject(item.source_key, reason, detail, item.size_bytes)


def batches(items: Iterable[Item], source_id: str, size: int) -> Iterator[Batch]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield to_batch(_keys_protected(chunk), source_id)
            chunk = []
    if chunk:
        yield to_batch(_keys_protected(chunk), source_id)


def _keys_protected(items: list[Item]) -> list[Item]:
    """A source_key that holds PII is stored, everywhere, as its keyed hash."""
    keys = protect_keys([i.source_key for i in items])
    return [replace(i, source_key=k) for i, k in zip(items, keys, strict=True)]


def to_batch(items: list[Item], source_id: str) -> Batch:
    kept = [i for i in items if i.reason is None]
    dropped = [i for i in items if i.reason is not None]
    records = pl.DataFrame(
        {
            "record_id": [_item_record_id(i) for i in kept],
            "source_id": [source_id] * len(kept),
            "source_key": [i.source_key for i in kept],
            "kind": [i.kind for i in kept],
            "text": [i.text for i in kept],
            "image_path": [i.image_path for i in kept],
        },
        schema=RECORD_SCHEMA,
    )
    drops = pl.DataFrame(
        {
            "record_id": [None] * len(dropped),
            "source_id": [source_id] * len(dropped),
            "source_key": [i.source_key for i in dropped],
            "reason": [str(i.reason) for i in dropped],
            "evidence": [evidence(detail=i.detail, size_bytes=i.size_bytes) for i in dropped],
        },
        schema=DROP_SCHEMA,
    )
    return Batch(records, drops, [i.size_bytes for i in kept])


def _item_record_id(item: Item) -> str:
    if item.kind == IMAGE:
        return record_id(IMAGE, item.content or b"")
    return record_id(item.kind, item.text.encode("utf-8"))


@dataclass
class IngestOutcome:
    """What ingesting one source did: counts, the artifact, the source's content hash."""

    read: int
    kept: int
    dropped: dict[str, int]
    artifact: Artifact
    content_sha256: str
    files: int
    incidents: int = 0
    """New incidents raised at the door (one per matched occurrence and list)."""
    quarantined: int = 0
    """Occurrences dropped as harmful_hash_match."""
    moved: int = 0
    """Matched source files moved to screen.quarantine_dir."""


@dataclass(frozen=True)
class Screening:
    """What ingest needs to screen at the door, and where it keeps the hashes."""

    door: Door
    cache_path: Path
    quarantine_dir: Path | None = None

    @classmethod
    def from_config(
        cls, config: ScreenConfig, corpus: Corpus, engine: EngineConfig = LOCAL
    ) -> Screening:
        quarantine = corpus.resolve(config.quarantine_dir) if config.quarantine_dir else None
        door = Door.open(config, corpus, engine)
        return cls(door, corpus.resolve(config.hash_cache), quarantine)


def run(
    config: IngestConfig,
    ledger: Ledger,
    run_id: str,
    corpus: Corpus,
    source_id: str,
    screen: ScreenConfig,
    engine: EngineConfig = LOCAL,
) -> IngestOutcome:
    """Screen and stream one source into data/ingest/<source_id>.parquet and the ledger; the
    door hashes each batch on the engine."""
    source = corpus.source(source_id)
    spec = ReadSpec(
        source.text_field,
        source.id_field,
        config.max_record_bytes,
        config.batch_size,
        config.max_image_bytes,
        config.max_image_pixels,
    )
    return ingest_source(
        source,
        corpus.resolve(source.path),
        corpus.policy,
        spec,
        corpus.output(STAGE, source.id),
        ledger,
        run_id,
        Screening.from_config(screen, corpus, engine),
    )


def ingest_source(
    source: Source,
    root: Path,
    policy: Policy,
    spec: ReadSpec,
    out_path: Path,
    ledger: Ledger,
    run_id: str,
    screening: Screening,
) -> IngestOutcome:
    """Stream one source (found at ``root``) into ``out_path`` and the ledger, batch by batch,
    each batch screened at the door first."""
    files, escaped = list_files(root, source.format, source.glob)
    items = apply_policy(
        chain(escaped, read_items(files, source.format, spec)), policy_refusal(source, policy)
    )
    door = screening.door
    known = known_incident_ids(ledger)
    kept, incidents, dropped = 0, 0, Counter()
    hashes, quarantined = [], []
    ledger.append("hash_lists", door.list_rows(), run_id)
    # No ledger lock while reading: rows are staged, then appended through one writer.
    with StagedRows(out_path.parent) as staged:
        with parquet_sink(out_path) as write_records:
            for batch in batches(items, source.id, spec.batch_rows):
                screened = door.screen(batch.records, known)
                passed = _passed(batch, screened)
                write_records(passed.records)
                staged.add(_screened_rows(passed, screened))
                known |= set(screened.incidents["incident_id"])
                hashes.append(screened.hashes)
                quarantined.append(screened.quarantine)
                kept += passed.records.height
                incidents += screened.incidents.height
                dropped.update(passed.drops["reason"].to_list())
        staged.append_to(ledger, run_id, spec.batch_rows)
    # Every record's hashes, matched or not (no content), so a later list can still match it.
    if hashes:
        add_to_hash_cache(pl.concat(hashes), screening.cache_path)
    content_sha256 = content_digest({f.name: file_sha256(f.path) for f in files})
    matched = pl.concat(quarantined) if quarantined else None
    moves = _move_matched(screening, matched, source, root) if matched is not None else []
    outcome = IngestOutcome(
        read=kept + sum(dropped.values()),
        kept=kept,
        dropped=dict(sorted(dropped.items())),
        artifact=artifact(out_path, STAGE, source.id, kept),
        content_sha256=content_sha256,
        files=len(files) + len(escaped),
        incidents=incidents,
        quarantined=0 if matched is None else matched.select("source_id", "source_key").n_unique(),
        moved=len(moves),
    )
    _record_outcome(ledger, source, outcome, run_id, moves)
    return outcome


def _passed(batch: Batch, screened: Screened) -> Batch:
    """The batch with only the records the door let through, its drops joined."""
    mask = pl.Series(screened.passed, dtype=pl.Boolean())
    sizes = [size for size, ok in zip(batch.sizes, screened.passed, strict=True) if ok]
    return Batch(batch.records.filter(mask), pl.concat([batch.drops, screened.drops]), sizes)


def _screened_rows(passed: Batch, screened: Screened) -> list[tuple[str, pl.DataFrame]]:
    return [
        ("records", _ledger_records(passed)),
        ("drops", _ledger_drops(passed)),
        ("screen_matches", screened.matches.drop("source_id", "source_key")),
        ("quarantine", screened.quarantine),
        ("incidents", screened.incidents),
    ]


def _move_matched(
    screening: Screening, matched: pl.DataFrame, source: Source, root: Path
) -> list[dict]:
    if screening.quarantine_dir is None:
        return []
    return move_to_quarantine(matched, source.format, root, screening.quarantine_dir)


def policy_refusal(source: Source, policy: Policy) -> tuple[Reason, str] | None:
    """Why the policy refuses a whole source, or None when it may contribute records."""
    if source.license not in policy.allowed_licenses:
        return Reason.LICENSE_DISALLOWED, f"license {source.license} is not allowed"
    if source.consent not in policy.allowed_consent:
        return Reason.NO_CONSENT, f"consent basis {source.consent!r} is not allowed"
    return None


def _ledger_records(batch: Batch) -> pl.DataFrame:
    return batch.records.select("record_id", "source_id", "source_key", "kind").with_columns(
        pl.Series("size_bytes", batch.sizes, dtype=pl.Int64)
    )


def _ledger_drops(batch: Batch) -> pl.DataFrame:
    return batch.drops.with_columns(pl.lit(STAGE).alias("stage"))


def _record_outcome(
    ledger: Ledger, source: Source, outcome: IngestOutcome, run_id: str, moves: list[dict]
) -> None:
    source_row = {
        "source_id": source.id,
        "uri": source.uri,
        "path": source.path,
        "license": source.license,
        "consent": source.consent,
        "retrieved_at": source.retrieved_at,
        "owner": source.owner,
        "content_sha256": outcome.content_sha256,
        "files": outcome.files,
    }
    counts = {
        "stage": STAGE,
        "source_id": source.id,
        "records_in": outcome.read,
        "records_out": outcome.kept,
        "dropped": outcome.read - outcome.kept,
    }
    ledger.append_many(
        [
            ("sources", [source_row]),
            ("stage_counts", [counts]),
            ("artifacts", [outcome.artifact.row()]),
            ("quarantine_moves", moves),
        ],
        run_id,
    )
