"""Incidents: known-harmful matches as reportable facts, and their export.

An incident is one matched occurrence (a record at one source and source_key) and one list.
Every copy is its own incident, also copies that are byte-identical duplicates of each other:
a hotline needs every location. It is "new" when caught at the door (ingest), "retroactive"
when a later list matched a record an earlier run passed (rescreen); a retroactive incident
names the artifacts the purge rewrote.

Incidents hold hashes, list identities, locations and times; never the item's bytes or text.
The same occurrence and list make the same incident_id, so a re-run reports nothing twice.
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
HASH_COLUMNS = ["sha256", "md5", "sha256_text", "phash", "dhash"]
OCCURRENCE = ["record_id", "source_id", "source_key"]

INCIDENT_SCHEMA: dict[str, pl.DataType] = {
    "incident_id": pl.String(),
    "kind": pl.String(),
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "location": pl.String(),
    **{column: pl.String() for column in HASH_COLUMNS},
    "list_name": pl.String(),
    "list_version": pl.String(),
    "list_sha256": pl.String(),
    "hash_type": pl.String(),
    "entry_hash": pl.String(),
    "entry_label": pl.String(),
    "distance": pl.Int64(),
    "entries_matched": pl.Int64(),
    "affected_artifacts": pl.String(),
}

EXPORT_COLUMNS = [
    "incident_id",
    "kind",
    "detected_at",
    "source_id",
    "source_key",
    "location",
    *MATCH_COLUMNS,
    "entries_matched",
    *HASH_COLUMNS,
    "affected_artifacts",
]
"""What a hotline report holds: where each copy was, which entry it matched, its hashes."""


def incident_id(record_id: str, list_name: str, source_id: str, source_key: str) -> str:
    key = "\0".join((record_id, list_name, source_id, source_key))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def best_per_list(matches: pl.DataFrame) -> pl.DataFrame:
    """One row per occurrence and list: its nearest entry, and how many entries it matched."""
    return (
        matches.sort("distance", "entry_line")
        .group_by(*OCCURRENCE, "list_name", maintain_order=True)
        .agg(pl.all().first(), pl.len().alias("entries_matched"))
    )


def build_incidents(
    best: pl.DataFrame,
    occurrences: pl.DataFrame,
    kind: str,
    known_ids: set[str],
    affected: dict[str, list[dict]] | None = None,
) -> pl.DataFrame:
    """INCIDENT_SCHEMA rows for each row of ``best`` (best_per_list) not reported before.

    occurrences: record_id, source_id, source_key, location and HASH_COLUMNS per occurrence;
    affected: record_id -> the artifacts rewritten without it (retroactive incidents).
    """
    if best.is_empty():
        return pl.DataFrame(schema=INCIDENT_SCHEMA)
    located = occurrences.select(*OCCURRENCE, "location", *HASH_COLUMNS).unique(OCCURRENCE)
    rows = best.join(located, on=OCCURRENCE, how="left").to_dicts()
    out = []
    for row in rows:
        ident = incident_id(row["record_id"], row["list_name"], row["source_id"], row["source_key"])
        if ident in known_ids:
            continue
        touched = (affected or {}).get(row["record_id"], [])
        out.append(
            {
                **{key: row.get(key) for key in INCIDENT_SCHEMA},
                "incident_id": ident,
                "kind": kind,
                "affected_artifacts": json.dumps(touched),
            }
        )
    return pl.DataFrame(out, schema=INCIDENT_SCHEMA)


def known_incident_ids(ledger: Ledger) -> set[str]:
    return set(ledger.query("SELECT incident_id FROM incidents")["incident_id"])


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
    by = {key: _counts(incidents, key) for key in ("kind", "list_name", "hash_type", "source_id")}
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": {
            "incidents": incidents.height,
            "records": incidents["record_id"].n_unique() if incidents.height else 0,
            "by_kind": by["kind"],
            "by_list": by["list_name"],
            "by_hash_type": by["hash_type"],
            "by_source": by["source_id"],
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
                    "affected_artifacts": ";".join(a["path"] for a in affected),
                    "affected_artifact_count": len(affected),
                }
            )
    return [json_path, csv_path]
