"""The scrub stage without Dagster: read upstream records, scrub them, write, record in ledger.

Text records get their PII replaced by the configured operators; a record with more entities
than pii.max_entities_per_doc is dropped (pii_over_limit). Image records pass through. The
ledger gets counts per source and entity type and per record, never a value.

record_id stays the id the record was ingested under, so the ledger's lineage of a record
holds across stages; the scrubbed content is covered by the artifact's sha256.
"""

import json
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from resources.core.corpus import Corpus
from resources.core.engine import LOCAL, EngineConfig
from resources.core.ledger import Ledger, counted_stage, evidence
from resources.core.reasons import Reason
from resources.core.records import DROP_SCHEMA, HAS_TEXT
from resources.core.storage import (
    Artifact,
    artifact,
    atomic_path,
    data_version,
    parquet_writer,
    read_parts,
    stage_path,
)
from resources.scrub import measured
from resources.scrub.config import ScrubConfig
from resources.scrub.residual import Residual, rescan

STAGE = "scrub"
UPSTREAM = "dedup"


@dataclass
class ScrubOutcome:
    records_in: int = 0
    kept: int = 0
    dropped: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    text_docs: int = 0
    text_bytes: int = 0
    seconds: float = 0.0
    artifacts: dict[str, str] = field(default_factory=dict)
    """source_id -> sha256 of data/scrub/<source_id>.parquet."""
    counted: list[str] = field(default_factory=list)
    """Sources with at least one record in, hence a stage_counts row in the ledger."""
    residual: Residual | None = None
    """What the sensitive re-scan still finds in the output."""

    @property
    def data_version(self) -> str:
        return data_version(self.artifacts)


def upstream_sources(data_dir: str | Path, source_ids: list[str]) -> list[str]:
    """The declared sources the upstream stage wrote a file for."""
    return [s for s in source_ids if stage_path(data_dir, UPSTREAM, s).exists()]


def scrub_stage(
    data_dir: str | Path,
    source_ids: list[str],
    config: ScrubConfig,
    ledger: Ledger,
    run_id: str,
    engine: EngineConfig = LOCAL,
) -> ScrubOutcome:
    """Scrub every source's upstream records, config.part_records at a time, into
    data/scrub/<source>.parquet; ledger it.

    Every file is renamed into place only once the ledger holds what the stage did: a failure
    part-way leaves the earlier outputs as they were.
    """
    tally = _Tally()
    artifacts: dict[str, Artifact] = {}
    with ExitStack() as pending:
        for source_id in upstream_sources(data_dir, source_ids):
            path = stage_path(data_dir, STAGE, source_id)
            tmp = pending.enter_context(atomic_path(path))
            written = 0
            with parquet_writer(tmp) as write:
                upstream = stage_path(data_dir, UPSTREAM, source_id)
                for records in read_parts(upstream, config.part_records):
                    kept = _scrub_part(records, config, engine, tally)
                    write(kept)
                    written += kept.height
            artifacts[source_id] = replace(artifact(tmp, STAGE, source_id, written), path=path)
        drops = pl.concat(tally.drops or [pl.DataFrame(schema=DROP_SCHEMA)])
        dropped = Counter(drops["source_id"].to_list())
        counts = counted_stage(STAGE, tally.records_in, tally.kept, dropped)
        ledger.record_counts(STAGE, run_id, counts, drops)
        ledger.append_many(
            [
                ("pii_counts", tally.by_type()),
                (
                    "pii_record_counts",
                    pl.concat(tally.per_record or [pl.DataFrame(schema=_PER_RECORD)]),
                ),
                ("artifacts", [a.row() for a in artifacts.values()]),
            ],
            run_id,
        )
    return ScrubOutcome(
        records_in=tally.records_in.total(),
        kept=tally.kept.total(),
        dropped=drops.height,
        entities=tally.per_type(),
        text_docs=tally.text_docs,
        text_bytes=tally.text_bytes,
        seconds=tally.seconds,
        artifacts={source_id: a.sha256 for source_id, a in artifacts.items()},
        counted=sorted(tally.records_in),
    )


@dataclass
class _Tally:
    """What the ledger learns from the parts scrubbed so far: counts, and the rows of the
    records that hold PII or were dropped; no content."""

    records_in: Counter[str] = field(default_factory=Counter)
    """Records read, per source."""
    kept: Counter[str] = field(default_factory=Counter)
    """Records written, per source."""
    entities: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Entities found, per (source, entity type)."""
    holding: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Texts holding at least one, per (source, entity type)."""
    drops: list[pl.DataFrame] = field(default_factory=list)
    per_record: list[pl.DataFrame] = field(default_factory=list)
    """pii_record_counts rows: the records holding PII."""
    text_docs: int = 0
    text_bytes: int = 0
    seconds: float = 0.0

    def per_type(self) -> dict[str, int]:
        """Entities found, per type."""
        out: Counter[str] = Counter()
        for (_, entity_type), n in self.entities.items():
            out[entity_type] += n
        return dict(out)

    def by_type(self) -> list[dict]:
        """The pii_counts rows: entities and records holding one, per source and type."""
        return [
            {"source_id": s, "entity_type": t, "entities": n, "records": self.holding[(s, t)]}
            for (s, t), n in sorted(self.entities.items())
        ]


def _scrub_part(
    records: pl.DataFrame, config: ScrubConfig, engine: EngineConfig, tally: _Tally
) -> pl.DataFrame:
    """The part's records to write, in their order, texts scrubbed and those over the limit
    left out; what the ledger learns of them goes to tally."""
    from resources.scrub.detection import scrub_texts  # Presidio loads in ~3 s: only when scrubbing

    rows = records.with_row_index("_row").filter(HAS_TEXT)
    started = time.perf_counter()
    results = scrub_texts(rows["text"].to_list(), config, engine)
    tally.seconds += time.perf_counter() - started
    scrubbed = rows.with_columns(
        pl.Series("text", [r.text for r in results], dtype=pl.String),
        pl.Series("_over", [r.over_limit for r in results], dtype=pl.Boolean),
        pl.Series("_n", [r.n_entities for r in results], dtype=pl.Int64),
        pl.Series("_counts", [json.dumps(r.counts, sort_keys=True) for r in results], pl.String),
    )
    over = scrubbed.filter(pl.col("_over"))
    if over.height:
        tally.drops.append(_over_limit_drops(over, config))
    tally.per_record.append(_per_record_rows(scrubbed.filter(pl.col("_n") > 0)))
    for source_id, result in zip(rows["source_id"], results, strict=True):
        for entity_type, n in result.counts.items():
            tally.entities[(source_id, entity_type)] += n
            tally.holding[(source_id, entity_type)] += 1
    tally.text_docs += rows.height
    tally.text_bytes += int(rows["text"].str.len_bytes().sum() or 0)
    # Scrubbed texts back in their rows, so the output keeps the upstream order.
    texts = records["text"].scatter(rows["_row"], scrubbed["text"])
    dropped = pl.Series([False] * records.height).scatter(over["_row"], True)
    kept = records.with_columns(texts).filter(~dropped)
    tally.records_in.update(records["source_id"].to_list())
    tally.kept.update(kept["source_id"].to_list())
    return kept


_PER_RECORD = {
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "entities": pl.Int64(),
    "counts": pl.String(),
    "dropped": pl.Boolean(),
}
"""The pii_record_counts rows the stage appends."""


def _per_record_rows(scrubbed: pl.DataFrame) -> pl.DataFrame:
    """pii_record_counts rows of scrubbed texts."""
    return scrubbed.select(
        "record_id",
        "source_id",
        "source_key",
        pl.col("_n").alias("entities"),
        pl.col("_counts").alias("counts"),
        pl.col("_over").alias("dropped"),
    ).cast(_PER_RECORD)


def _over_limit_drops(over: pl.DataFrame, config: ScrubConfig) -> pl.DataFrame:
    """DROP_SCHEMA rows of the texts holding more entities than the limit."""
    return over.select(
        "record_id",
        "source_id",
        "source_key",
        pl.lit(Reason.PII_OVER_LIMIT.value).alias("reason"),
        pl.struct("_n", "_counts")
        .map_elements(
            lambda s: evidence(
                entities=s["_n"], limit=config.max_entities_per_doc, counts=json.loads(s["_counts"])
            ),
            return_dtype=pl.String,
        )
        .alias("evidence"),
    ).cast(DROP_SCHEMA)


def detector_model_row() -> dict:
    """The NER model's provenance as a detector_models row (built first if it is missing)."""
    from resources.scrub import ner_model

    prov = ner_model.provenance(ner_model.ensure_model())
    return {
        "name": prov["name"],
        "recipe_digest": prov["recipe_digest"],
        "model_sha256": prov["model_sha256"],
        "labels": ",".join(prov["labels"]),
        "training_data": prov["training_data"],
        "train_locales": ",".join(prov["train_locales"]),
        "settings": json.dumps(prov["settings"], sort_keys=True),
        "license": prov["license"],
    }


def run(
    config: ScrubConfig,
    ledger: Ledger,
    run_id: str,
    corpus: Corpus,
    engine: EngineConfig = LOCAL,
) -> ScrubOutcome:
    """Scrub every source on the engine, then re-scan the output sensitively (here) and record
    what is left."""
    if config.ner:
        model = detector_model_row()
        ledger.append("detector_models", [model], run_id)
        measured.record(ledger, model["model_sha256"])
    outcome = scrub_stage(corpus.data_dir, corpus.source_ids, config, ledger, run_id, engine)
    outputs = {s: stage_path(corpus.data_dir, STAGE, s) for s in outcome.artifacts}
    outcome.residual = rescan(outputs, config, engine)
    by_type = [row for s in outcome.residual.sources for row in s.type_rows()]  # may be empty
    ledger.append_many(
        [("pii_rescans", [s.row() for s in outcome.residual.sources]), ("pii_residuals", by_type)],
        run_id,
    )
    return outcome
