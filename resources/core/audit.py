"""The auditor's questions, answered from the ledger alone."""

from __future__ import annotations

import json

import polars as pl

from resources.core.ledger import Ledger
from resources.core.reasons import Reason, describe

LATEST_COUNTS = """
SELECT stage, source_id, records_in, records_out, dropped, run_id, recorded_at
FROM stage_counts
QUALIFY row_number() OVER (PARTITION BY stage, source_id ORDER BY entry_seq DESC) = 1
"""


def latest_counts(ledger: Ledger) -> pl.DataFrame:
    """The most recent stage count of every stage and source."""
    return ledger.query(LATEST_COUNTS + " ORDER BY source_id, recorded_at")


def latest_drop_reasons(ledger: Ledger) -> pl.DataFrame:
    """Drops by source, stage and reason, from the latest run of each stage and source."""
    return ledger.query(
        f"""
        WITH latest AS ({LATEST_COUNTS})
        SELECT d.source_id, d.stage, d.reason, count(*) AS n
        FROM drops d JOIN latest l USING (stage, source_id, run_id)
        GROUP BY ALL ORDER BY d.source_id, d.stage, d.reason
        """
    )


def latest_training(ledger: Ledger) -> dict | None:
    """The most recent DP training run, or None before any."""
    runs = ledger.query("SELECT * FROM training_runs ORDER BY entry_seq DESC LIMIT 1")
    return runs.row(0, named=True) if runs.height else None


def stats(ledger: Ledger) -> dict:
    tables = ledger.query(
        "SELECT table_name, estimated_size FROM duckdb_tables() ORDER BY table_name"
    )
    rows = {
        name: ledger.query(f"SELECT count(*) AS n FROM {name}").item()
        for name in tables["table_name"]
    }
    reasons = latest_drop_reasons(ledger).group_by("reason").agg(pl.col("n").sum()).sort("reason")
    return {
        "ledger": str(ledger.path),
        "chain_entries": rows.get("chain", 0),
        "runs": rows.get("runs", 0),
        "rows_per_table": rows,
        "latest_stage_counts": latest_counts(ledger).drop("recorded_at").to_dicts(),
        "dropped_by_reason": dict(zip(reasons["reason"], reasons["n"], strict=True)),
    }


def sources(ledger: Ledger) -> pl.DataFrame:
    """Each source as last ingested: its declared facts, content hash, and counts."""
    return ledger.query(
        """
        WITH s AS (
            SELECT * FROM sources
            QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1
        ), c AS (
            SELECT * FROM stage_counts WHERE stage = 'ingest'
            QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1
        )
        SELECT s.source_id, s.license, s.consent, s.uri, s.owner,
               strftime(s.retrieved_at, '%Y-%m-%dT%H:%M:%SZ') AS retrieved_at,
               s.content_sha256, s.files, c.records_in AS items_read,
               c.records_out AS records, c.dropped
        FROM s LEFT JOIN c USING (source_id) ORDER BY s.source_id
        """
    )


def why(ledger: Ledger, key: str) -> list[dict]:
    """Every occurrence of a record_id or source_key: source, license, consent, and fate.

    A raw key that held PII was stored as its keyed hash; it is hashed the same way here.
    """
    from resources.scrub.keys import hashed_key

    occurrences = ledger.query(
        """
        SELECT DISTINCT record_id, source_id, source_key, kind FROM records
        WHERE record_id = $1 OR source_key IN ($1, $2)
        UNION
        SELECT DISTINCT record_id, source_id, source_key, NULL FROM drops
        WHERE stage = 'ingest' AND (record_id = $1 OR source_key IN ($1, $2))
        """,
        [key, hashed_key(key)],
    )
    return [_occurrence(ledger, row) for row in occurrences.sort("source_id").to_dicts()]


def _occurrence(ledger: Ledger, occ: dict) -> dict:
    source = ledger.query(
        "SELECT uri, license, consent, strftime(retrieved_at, '%Y-%m-%dT%H:%M:%SZ') AS"
        " retrieved_at, owner, content_sha256 FROM sources WHERE source_id = ?"
        " ORDER BY entry_seq DESC LIMIT 1",
        [occ["source_id"]],
    ).to_dicts()
    drops = ledger.query(
        "SELECT stage, reason, evidence, run_id, strftime(recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS at"
        " FROM drops WHERE source_id = ? AND source_key = ? ORDER BY entry_seq",
        [occ["source_id"], occ["source_key"]],
    ).to_dicts()
    for drop in drops:
        drop["evidence"] = json.loads(drop["evidence"]) if drop["evidence"] else None
        drop["meaning"] = describe(Reason(drop["reason"]))
    stages = latest_counts(ledger).filter(pl.col("source_id") == occ["source_id"])["stage"]
    fate = (
        f"dropped at {drops[-1]['stage']}: {drops[-1]['reason']}"
        if drops
        else f"kept through {', '.join(stages)}"
    )
    return {**occ, "source": source[0] if source else None, "drops": drops, "fate": fate}
