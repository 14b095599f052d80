"""The auditor's questions, answered from the ledger alone."""

from __future__ import annotations

import json
import re

import duckdb
import polars as pl

from resources.core.ledger import Ledger, LedgerError, LedgerReader
from resources.core.ledger_lookup import LOOKUPS, key_of, prefix_range
from resources.core.reasons import Reason, describe

SOURCE_KEY = "lookup_source_key"

LIVE = "coalesce(run_id, '') NOT IN (SELECT run_id FROM failed_runs)"
"""Rows of runs that did not die or fail: what counts, why and the gate look at."""

LATEST_COUNTS = f"""
SELECT stage, source_id, records_in, records_out, dropped, run_id, recorded_at
FROM stage_counts WHERE {LIVE}
QUALIFY row_number() OVER (PARTITION BY stage, source_id ORDER BY entry_seq DESC) = 1
"""


def latest_counts(ledger: Ledger | LedgerReader) -> pl.DataFrame:
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
    runs = ledger.query(f"SELECT * FROM training_runs WHERE {LIVE} ORDER BY entry_seq DESC LIMIT 1")
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
        "failed_runs": rows.get("failed_runs", 0),
        "rows_per_table": rows,
        "latest_stage_counts": latest_counts(ledger).drop("recorded_at").to_dicts(),
        "dropped_by_reason": dict(zip(reasons["reason"], reasons["n"], strict=True)),
    }


def sources(ledger: Ledger) -> pl.DataFrame:
    """Each source as last ingested: its declared facts, content hash, and counts."""
    return ledger.query(
        f"""
        WITH s AS (
            SELECT * FROM sources WHERE {LIVE}
            QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1
        ), c AS (
            SELECT * FROM stage_counts WHERE stage = 'ingest' AND {LIVE}
            QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1
        )
        SELECT s.source_id, s.license, s.consent, s.uri, s.owner,
               strftime(s.retrieved_at, '%Y-%m-%dT%H:%M:%SZ') AS retrieved_at,
               s.content_sha256, s.files, c.records_in AS items_read,
               c.records_out AS records, c.dropped
        FROM s LEFT JOIN c USING (source_id) ORDER BY s.source_id
        """
    )


class AmbiguousKey(LedgerError):
    """A record-id prefix that more than one record id starts with."""


class UnsafeQuery(LedgerError):
    """SQL that is not exactly one SELECT statement."""


HEX_PREFIX = re.compile(r"[0-9a-f]{4,63}")

# `why` through the lookup tables (resources/core/ledger_lookup.py): first the candidate rows
# the lookups name for the key's k, by (entry_seq, row_no); then the question itself, on those
# rows only (zone maps skip every other row group), the real columns still compared, so a
# shared k returns nothing extra. The *_SCAN forms are the same questions without the lookups
# (an older ledger opened read-only has none); tests hold the two to the same answers.
_OCCURRENCES = """
SELECT DISTINCT record_id, source_id, source_key, kind FROM records
WHERE {where} (record_id = $1 OR source_key IN ($1, $2)) AND {live}
UNION
SELECT DISTINCT record_id, source_id, source_key, NULL FROM drops
WHERE {where} stage = 'ingest' AND (record_id = $1 OR source_key IN ($1, $2)) AND {live}
"""
WHY_SCAN = _OCCURRENCES.format(where="", live=LIVE)
_RESOLVE = """
SELECT DISTINCT record_id FROM records WHERE {where} starts_with(record_id, $1) AND {live}
ORDER BY record_id LIMIT 3
"""
RESOLVE_SCAN = _RESOLVE.format(where="", live=LIVE)
_DROPS = """
SELECT stage, reason, evidence, run_id, strftime(recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS at
FROM drops WHERE {where} source_id = $1 AND source_key = $2 AND {live} ORDER BY entry_seq
"""
DROPS_SCAN = _DROPS.format(where="", live=LIVE)
HIT = "SELECT entry_seq, row_no FROM {lookup} WHERE k = ${n}::UBIGINT"
HIT_RANGE = (
    "SELECT entry_seq, row_no FROM lookup_record_id WHERE k BETWEEN $1::UBIGINT AND $2::UBIGINT"
)


def _located(reader: LedgerReader, sql: str, params: list) -> str | None:
    """The SQL condition naming the candidate rows a lookup query found; None for none."""
    hits = reader.query(sql, params).rows()
    if not hits:
        return None
    seqs = ",".join(str(int(s)) for s in sorted({h[0] for h in hits}))
    rows = ",".join(str(int(r)) for r in sorted({h[1] for h in hits}))
    return f"entry_seq IN ({seqs}) AND row_no IN ({rows}) AND"


def _key_hits(reader: LedgerReader, probes: list[tuple[str, str]]) -> str | None:
    """Candidates for (lookup table, value) probes: one equality on k each (an IN list of
    k values would widen the zone-map range to everything between them)."""
    sql = " UNION ALL ".join(HIT.format(lookup=t, n=n) for n, (t, _) in enumerate(probes, 1))
    return _located(reader, sql, [key_of(t, v) for t, v in probes])


def _resolve(where: str) -> str:
    return _RESOLVE.format(where=where, live=LIVE)


def _has_lookups(reader: LedgerReader) -> bool:
    return set(LOOKUPS) <= reader.tables()


def user_sql(ledger: Ledger, sql: str) -> pl.DataFrame:
    """An auditor's SQL: exactly one SELECT, on a connection that can reach nothing else."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise UnsafeQuery(str(err).splitlines()[0]) from None
    if len(statements) != 1:
        raise UnsafeQuery(f"one SQL statement expected, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise UnsafeQuery(f"only SELECT is allowed on the ledger, not {kind.name}")
    return ledger.query(sql)


def resolve_record_id(ledger: Ledger | LedgerReader, key: str) -> str:
    """``key`` itself, or the one live record id it is a prefix of (AmbiguousKey if several)."""
    if not HEX_PREFIX.fullmatch(key):
        return key
    if isinstance(ledger, Ledger):
        with ledger.reader() as reader:
            return resolve_record_id(reader, key)
    if _has_lookups(ledger):
        where = _located(ledger, HIT_RANGE, list(prefix_range(key)))
        found = [] if where is None else ledger.query(_resolve(where), [key])["record_id"]
    else:
        found = ledger.query(RESOLVE_SCAN, [key])["record_id"]
    names = list(found)
    if len(names) > 1:
        raise AmbiguousKey(f"{key!r} is a prefix of several record ids: {', '.join(names)}, ...")
    return names[0] if names else key


def why(ledger: Ledger | LedgerReader, key: str) -> list[dict]:
    """Every occurrence of a record_id (or a unique prefix of one) or source_key: source,
    license, consent, and fate. Rows of failed runs are left out. A raw key that held PII was
    stored as its keyed hash; it is hashed the same way here. Pass a LedgerReader to ask
    many questions on one connection (opening one costs tens of ms, whatever the size)."""
    from resources.scrub.keys import hashed_key

    if isinstance(ledger, Ledger):
        with ledger.reader() as reader:
            return why(reader, key)
    reader = ledger
    key = resolve_record_id(reader, key)
    hashed = hashed_key(key)
    if _has_lookups(reader):
        probes = [("lookup_record_id", key), (SOURCE_KEY, key), (SOURCE_KEY, hashed)]
        where = _key_hits(reader, probes)
        if where is None:
            return []
        occurrences = reader.query(_OCCURRENCES.format(where=where, live=LIVE), [key, hashed])
    else:
        occurrences = reader.query(WHY_SCAN, [key, hashed])
    rows = occurrences.sort("source_id").to_dicts()
    return [_occurrence(reader, row) for row in rows]


def _occurrence(ledger: LedgerReader, occ: dict) -> dict:
    source = ledger.query(
        "SELECT uri, license, consent, strftime(retrieved_at, '%Y-%m-%dT%H:%M:%SZ') AS"
        " retrieved_at, owner, content_sha256 FROM sources WHERE source_id = ?"
        " ORDER BY entry_seq DESC LIMIT 1",
        [occ["source_id"]],
    ).to_dicts()
    where = ""  # the scan, on a ledger without lookups
    if _has_lookups(ledger):
        where = _key_hits(ledger, [(SOURCE_KEY, occ["source_key"])])
    drops = []
    if where is not None:
        sql = _DROPS.format(where=where, live=LIVE)
        drops = ledger.query(sql, [occ["source_id"], occ["source_key"]]).to_dicts()
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
