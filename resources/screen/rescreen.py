"""rescreen: a new or changed hash list is matched against the hash cache of every record ever
ingested; what an earlier run passed and a list now names is reported, purged and tainted.

``run`` does, in order:

1. match: every cached record (hashes only, resources/screen/matching.py) against every list;
   a matched record that an earlier ingest passed (it is in the ledger's records table) is a
   retroactive incident, one per occurrence and list, reported once;
2. purge: every Parquet file under data/ that holds the record (the ingest, dedup and scrub
   outputs, the dedup signature store, anything else with a record_id column) is rewritten
   without it, atomically; each rewrite is a ledger ``purges`` row (path, old and new sha256,
   record ids, incident ids) and a new ``artifacts`` row. The user's source files, the hash
   cache, the hash lists and ledger exports (snapshots of the append-only ledger) are not
   artifacts and stay;
3. taint: every training run whose training set (ledger ``training_set``, see
   resources/train/budget.py training_roles) holds the record is a ``tainted_runs`` row with
   the incident id, so a gate can refuse the run and its model.

It is idempotent: a second call with the same lists finds nothing left to purge, no incident
or taint not already recorded, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from resources.core.corpus import Corpus
from resources.core.ledger import Ledger, evidence
from resources.core.records import IMAGE
from resources.core.storage import artifact, file_sha256, write_parquet
from resources.screen import incidents as inc
from resources.screen.config import ScreenConfig
from resources.screen.door import Door
from resources.screen.matching import CACHE_COLUMNS, read_hash_cache

LEDGER_EXPORT_MARKER = "chain.parquet"
"""A folder holding this is a ledger export (Ledger.export): a copy of the ledger, not data."""


@dataclass
class RescreenOutcome:
    """What one rescreen did; the release engineer hooks revocation onto it."""

    incidents: pl.DataFrame
    """New retroactive incidents (incidents.INCIDENT_SCHEMA), one per occurrence and list."""
    purged_record_ids: list[str]
    """Record ids removed from at least one artifact by this call, sorted."""
    purges: list[dict] = field(default_factory=list)
    """The ledger's purges rows of this call: path, old_sha256, new_sha256, rows_removed,
    record_ids, incident_ids."""
    tainted_runs: list[str] = field(default_factory=list)
    """Training run ids (training_runs.run_id) newly marked tainted by this call, sorted."""
    matched_records: list[str] = field(default_factory=list)
    """Every record id an earlier run passed that a list matches now (also ones handled
    before), sorted: what a release must not hold."""
    cached_records: int = 0
    """Records in the hash cache: how many were screened again."""

    @property
    def changed(self) -> bool:
        return bool(self.incidents.height or self.purges or self.tainted_runs)


def run(config: ScreenConfig, ledger: Ledger, run_id: str, corpus: Corpus) -> RescreenOutcome:
    """Match the whole hash cache against the lists on disk; report, purge and taint."""
    door = Door.open(config, corpus)
    cache = read_hash_cache(corpus.resolve(config.hash_cache))
    null = pl.lit(None, dtype=pl.String())
    matches = door.screener.match(cache.with_columns(source_id=null, source_key=null))
    occurrences = _passed_occurrences(ledger, corpus, cache, matches["record_id"].unique())
    matched_ids = sorted(set(occurrences["record_id"]))
    best = inc.best_per_list(
        matches.drop("source_id", "source_key").join(
            occurrences.select(inc.OCCURRENCE), on="record_id"
        )
    )
    incident_of = _incident_ids(best)
    purges, affected = purge(corpus, config, matched_ids, incident_of)
    incidents = inc.build_incidents(
        best, occurrences, inc.RETROACTIVE, inc.known_incident_ids(ledger), affected
    )
    taints = _taints(ledger, matched_ids, incident_of)
    ledger.append_many(
        [
            ("hash_lists", door.list_rows()),
            ("incidents", incidents),
            ("purges", [_purge_row(p) for p in purges]),
            ("artifacts", [p["artifact"].row() for p in purges]),
            ("tainted_runs", taints),
        ],
        run_id,
    )
    purged = sorted({r for p in purges for r in p["record_ids"]})
    return RescreenOutcome(
        incidents=incidents,
        purged_record_ids=purged,
        purges=[_purge_row(p) for p in purges],
        tainted_runs=sorted(set(taints["training_run_id"])),
        matched_records=matched_ids,
        cached_records=cache.height,
    )


def _passed_occurrences(
    ledger: Ledger, corpus: Corpus, cache: pl.DataFrame, record_ids: pl.Series
) -> pl.DataFrame:
    """Where earlier runs passed these records: record_id, source_id, source_key, location and
    the record's hashes (from the cache)."""
    passed = ledger.query(
        "SELECT DISTINCT record_id, source_id, source_key, kind FROM records"
        " WHERE list_contains($1, record_id) ORDER BY source_id, source_key",
        [record_ids.to_list()],
    )
    roots = {s.id: s.path for s in corpus.sources}
    location = [
        f"{roots.get(r['source_id'], r['source_id'])}/{r['source_key']}"
        if r["kind"] == IMAGE
        else f"{r['source_id']}:{r['source_key']}"
        for r in passed.iter_rows(named=True)
    ]
    hashes = cache.select(CACHE_COLUMNS).drop("kind", "phash_oriented", "dhash_oriented")
    return passed.with_columns(pl.Series("location", location, dtype=pl.String())).join(
        hashes.unique("record_id"), on="record_id", how="left"
    )


def _incident_ids(best: pl.DataFrame) -> dict[str, list[str]]:
    """record_id -> the ids of every incident (occurrence, list) it has, sorted."""
    out: dict[str, list[str]] = {}
    for r in best.iter_rows(named=True):
        ident = inc.incident_id(r["record_id"], r["list_name"], r["source_id"], r["source_key"])
        out.setdefault(r["record_id"], []).append(ident)
    return {record: sorted(ids) for record, ids in out.items()}


def artifact_files(corpus: Corpus, config: ScreenConfig) -> list[Path]:
    """Every Parquet file under data/ with a record_id column that is an artifact of assay."""
    data_dir = corpus.data_dir
    if not data_dir.is_dir():
        return []
    keep_out = [corpus.resolve(s.path) for s in corpus.sources]
    keep_out += [corpus.resolve(config.hashlists_dir), corpus.resolve(config.hash_cache)]
    if config.quarantine_dir:
        keep_out.append(corpus.resolve(config.quarantine_dir))
    found = []
    for path in sorted(data_dir.rglob("*.parquet")):
        resolved = path.resolve()
        if any(resolved == p or resolved.is_relative_to(p) for p in keep_out):
            continue
        if (path.parent / LEDGER_EXPORT_MARKER).exists():
            continue
        if "record_id" in pq.read_schema(path).names:
            found.append(path)
    return found


def purge(
    corpus: Corpus, config: ScreenConfig, record_ids: list[str], incident_of: dict[str, list[str]]
) -> tuple[list[dict], dict[str, list[dict]]]:
    """Rewrite every artifact holding any of these records without them, atomically.

    Returns the purges (path, old and new sha256, rows removed, record ids, incident ids, the
    new Artifact) and, per record, the artifacts it was removed from.
    """
    if not record_ids:
        return [], {}
    purges, affected = [], {}
    for path in artifact_files(corpus, config):
        frame = pl.read_parquet(path)
        hit = pl.col("record_id").is_in(record_ids)
        removed = sorted(set(frame.filter(hit)["record_id"]))
        if not removed:
            continue
        old = file_sha256(path)
        kept = frame.filter(~hit)
        write_parquet(kept, path)
        stage, source_id = _stage_of(corpus.data_dir, path)
        rewritten = artifact(path, stage, source_id, kept.height)
        entry = {
            "path": str(path),
            "old_sha256": old,
            "new_sha256": rewritten.sha256,
            "rows_removed": frame.height - kept.height,
            "record_ids": removed,
            "incident_ids": sorted({i for r in removed for i in incident_of.get(r, [])}),
            "artifact": rewritten,
        }
        purges.append(entry)
        for record in removed:
            affected.setdefault(record, []).append(
                {"path": str(path), "old_sha256": old, "new_sha256": rewritten.sha256}
            )
    return purges, affected


def _stage_of(data_dir: Path, path: Path) -> tuple[str, str | None]:
    """data/<stage>/<source>.parquet -> (stage, source); anything deeper -> (stage, None)."""
    parts = path.relative_to(data_dir).parts
    return parts[0], (path.stem if len(parts) == 2 else None)


def _purge_row(purge_entry: dict) -> dict:
    return {
        **{k: purge_entry[k] for k in ("path", "old_sha256", "new_sha256", "rows_removed")},
        "record_ids": evidence(ids=purge_entry["record_ids"]),
        "incident_ids": evidence(ids=purge_entry["incident_ids"]),
    }


def _taints(
    ledger: Ledger, record_ids: list[str], incident_of: dict[str, list[str]]
) -> pl.DataFrame:
    """tainted_runs rows for every training run whose set holds a record, not recorded yet."""
    schema = {
        "training_run_id": pl.String(),
        "incident_id": pl.String(),
        "record_id": pl.String(),
        "role": pl.String(),
    }
    used = ledger.query(
        "SELECT DISTINCT run_id AS training_run_id, record_id, role FROM training_set"
        " WHERE list_contains($1, record_id)",
        [record_ids],
    )
    done = ledger.query("SELECT training_run_id, incident_id, record_id FROM tainted_runs")
    rows = [
        {**r, "incident_id": ident}
        for r in used.iter_rows(named=True)
        for ident in incident_of.get(r["record_id"], [])
    ]
    frame = pl.DataFrame(rows, schema=schema)
    return frame.join(done, on=["training_run_id", "incident_id", "record_id"], how="anti").sort(
        "training_run_id", "record_id", "incident_id"
    )
