"""Incidents: known-harmful matches as reportable facts, and their export.

An incident is one record matching one list. It is "new" when the record never passed a
screen before, and "retroactive" when an earlier screen run passed it (the list grew since):
then it names every artifact that may contain the record, so a release gate can revoke them.
Screen outputs record which records they hold (ledger table artifact_records), so those are
exact. Later stages' artifacts (train, release) do not record their inputs yet, so every one of
them recorded since the record first passed a screen is named: more than needed, never fewer.

Incidents hold hashes, list identities, counts and times; never the item's bytes or text.
The same record and list make the same incident_id, so a re-run reports nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from resources.core.ledger import Ledger
from resources.screen.matching import MATCH_COLUMNS

NEW = "new"
RETROACTIVE = "retroactive"
STAGES_BEFORE_SCREEN = ("ingest", "dedup", "scrub")
SCREEN = "screen"

INCIDENT_SCHEMA: dict[str, pl.DataType] = {
    "incident_id": pl.String(),
    "kind": pl.String(),
    "record_id": pl.String(),
    "sha256": pl.String(),
    "md5": pl.String(),
    "sha256_text": pl.String(),
    "phash": pl.String(),
    "dhash": pl.String(),
    "list_name": pl.String(),
    "list_version": pl.String(),
    "list_sha256": pl.String(),
    "hash_type": pl.String(),
    "entry_hash": pl.String(),
    "entry_label": pl.String(),
    "distance": pl.Int64(),
    "entries_matched": pl.Int64(),
    "occurrences": pl.Int64(),
    "sources": pl.String(),
    "affected_artifacts": pl.String(),
}

# What leaves the organisation: no source keys (they can name people), no labels' free text
# beyond the list's own, no content.
EXPORT_COLUMNS = [
    "incident_id",
    "kind",
    "detected_at",
    *MATCH_COLUMNS,
    "entries_matched",
    "sha256",
    "md5",
    "sha256_text",
    "phash",
    "dhash",
    "occurrences",
    "sources",
    "affected_artifacts",
]


def incident_id(record_id: str, list_name: str) -> str:
    return hashlib.sha256(f"{record_id}\0{list_name}".encode()).hexdigest()[:32]


def earlier_passes(ledger: Ledger, record_ids: list[str]) -> pl.DataFrame:
    """Screen artifacts of earlier runs that hold any of these records."""
    return ledger.query(
        "SELECT r.record_id, a.path, a.sha256, a.stage, a.run_id, a.recorded_at"
        " FROM artifact_records r JOIN artifacts a"
        "   ON a.sha256 = r.artifact_sha256 AND a.stage = r.stage"
        " WHERE list_contains($1, r.record_id)"
        " ORDER BY a.recorded_at",
        [record_ids],
    ).unique(["record_id", "sha256", "run_id"], maintain_order=True)


def later_stage_artifacts(ledger: Ledger) -> pl.DataFrame:
    stages = [*STAGES_BEFORE_SCREEN, SCREEN]
    return ledger.query(
        "SELECT path, sha256, stage, run_id, recorded_at FROM artifacts"
        " WHERE NOT list_contains($1, stage) ORDER BY recorded_at",
        [stages],
    )


def known_occurrences(ledger: Ledger, record_ids: list[str]) -> pl.DataFrame:
    return ledger.query(
        "SELECT DISTINCT record_id, source_id, source_key FROM records"
        " WHERE list_contains($1, record_id)",
        [record_ids],
    )


def build_incidents(
    matches: pl.DataFrame,
    hashes: pl.DataFrame,
    occurrences: pl.DataFrame,
    passes: pl.DataFrame,
    later: pl.DataFrame,
    known_ids: set[str],
) -> pl.DataFrame:
    """One row per (record, list) match not reported before (INCIDENT_SCHEMA).

    matches: matching.MATCH_SCHEMA rows; hashes: one row per record_id with its hashes;
    occurrences: record_id, source_id, source_key; passes: earlier_passes(); later:
    later_stage_artifacts(); known_ids: incident ids already in the ledger.
    """
    if matches.is_empty():
        return pl.DataFrame(schema=INCIDENT_SCHEMA)
    best = (
        matches.sort("distance", "entry_line")
        .group_by("record_id", "list_name", maintain_order=True)
        .agg(pl.all().first(), pl.len().alias("entries_matched"))
    )
    by_id = {row["record_id"]: row for row in hashes.unique("record_id").to_dicts()}
    rows = []
    for match in best.to_dicts():
        record = match["record_id"]
        ident = incident_id(record, match["list_name"])
        if ident in known_ids:
            continue
        seen = occurrences.filter(pl.col("record_id") == record).unique(["source_id", "source_key"])
        passed = passes.filter(pl.col("record_id") == record)
        affected = _affected(passed, later)
        hashes_of = by_id.get(record, {})
        rows.append(
            {
                "incident_id": ident,
                "kind": RETROACTIVE if passed.height else NEW,
                "record_id": record,
                **{h: hashes_of.get(h) for h in ("sha256", "md5", "sha256_text", "phash", "dhash")},
                **{k: match[k] for k in ("list_name", "list_version", "list_sha256", "hash_type")},
                "entry_hash": match["entry_hash"],
                "entry_label": match["entry_label"],
                "distance": match["distance"],
                "entries_matched": match["entries_matched"],
                "occurrences": seen.height,
                "sources": ",".join(sorted(set(seen["source_id"]))),
                "affected_artifacts": json.dumps(affected),
            }
        )
    return pl.DataFrame(rows, schema=INCIDENT_SCHEMA)


def _affected(passed: pl.DataFrame, later: pl.DataFrame) -> list[dict]:
    if passed.is_empty():
        return []
    first = passed["recorded_at"].min()
    since = later.filter(pl.col("recorded_at") >= first)
    out = []
    for frame in (passed, since):
        for row in frame.select("path", "sha256", "stage", "run_id").to_dicts():
            if row not in out:
                out.append(row)
    return out


def list_incidents(ledger: Ledger) -> pl.DataFrame:
    """Every incident in the ledger, oldest first, with the time it was detected."""
    return ledger.query(
        "SELECT *, strftime(recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS detected_at FROM incidents"
        " ORDER BY entry_seq, row_no"
    ).drop("entry_seq", "row_no", "recorded_at")


def incident_report(ledger: Ledger) -> dict:
    """The document for a reporting body: incidents, counts, lists; hashes only."""
    incidents = list_incidents(ledger)
    rows = incidents.select(EXPORT_COLUMNS).to_dicts() if incidents.height else []
    for row in rows:
        row["affected_artifacts"] = json.loads(row["affected_artifacts"] or "[]")
    lists = ledger.query(
        "SELECT DISTINCT name, version, provider, sha256, entries FROM hash_lists"
        " ORDER BY name, version"
    )
    by = {key: _counts(incidents, key) for key in ("kind", "list_name", "hash_type")}
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": {
            "incidents": incidents.height,
            "records": incidents["record_id"].n_unique() if incidents.height else 0,
            "occurrences": int(incidents["occurrences"].sum()) if incidents.height else 0,
            "by_kind": by["kind"],
            "by_list": by["list_name"],
            "by_hash_type": by["hash_type"],
        },
        "lists": lists.to_dicts(),
        "incidents": rows,
    }


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.is_empty():
        return {}
    counted = frame.group_by(column).len().sort(column)
    return dict(zip(counted[column].to_list(), counted["len"].to_list(), strict=True))


def export_incidents(ledger: Ledger, out_dir: str | Path) -> list[Path]:
    """incidents.json (the whole report) and incidents.csv (one row per incident)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = incident_report(ledger)
    json_path, csv_path = out / "incidents.json", out / "incidents.csv"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*EXPORT_COLUMNS, "affected_artifact_count"])
        writer.writeheader()
        for row in report["incidents"]:
            affected = row["affected_artifacts"]
            writer.writerow(
                {
                    **row,
                    "affected_artifacts": ";".join(a["sha256"] for a in affected),
                    "affected_artifact_count": len(affected),
                }
            )
    return [json_path, csv_path]
