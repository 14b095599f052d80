"""The provenance ledger: an append-only DuckDB file whose every append extends a hash chain.

Each append writes one batch of rows to one table and one row to ``chain``:
entry_hash = sha256(prev_hash || batch_digest), where batch_digest is computed from the stored
rows themselves, streamed back out of DuckDB as Arrow (so verification recomputes exactly what
was hashed; the format is in ledger_digest.py). Changing, deleting or inserting any row breaks
the digest of its entry or leaves a row no entry accounts for. A batch of more than
MAX_ENTRY_ROWS rows becomes several entries, so no one entry needs much memory to check.

DuckDB allows one writer per file, across processes too: every connection takes an flock on a
sibling ``.lock`` file (exclusive to write, shared to read) for as long as it is open.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from resources.core.ledger_digest import (
    V2,
    Column,
    arrow_digest,
    canonical_columns,
    stream_entries,
    v1_digests,
)
from resources.core.ledger_insert import insert_arrow
from resources.core.ledger_lookup import (
    INDEXED_TABLES,
    LOOKUP_DDL,
    LOOKUPS,
    DerivedLookups,
    lookup_rows,
    stored_lookup_digests,
    write_lookups,
)
from resources.core.ledger_tables import TABLES
from resources.core.signing import Signer, verify_signature
from resources.core.storage import canonical_json, write_text

GENESIS = "0" * 64
BOOKKEEPING_DDL = "entry_seq BIGINT, row_no BIGINT, recorded_at TIMESTAMPTZ"
CHAIN_DDL = (
    "seq BIGINT PRIMARY KEY, tbl VARCHAR, n_rows BIGINT, batch_digest VARCHAR,"
    " prev_hash VARCHAR, entry_hash VARCHAR, recorded_at TIMESTAMPTZ"
)

Rows = pl.DataFrame | pa.Table | Sequence[dict]

MAX_ENTRY_ROWS = 1 << 20
"""Rows per chain entry at most; a larger batch is split into several entries."""

SANDBOX = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
}
"""Every ledger connection: no file but the ledger, no extension; its settings are locked once
the time zone is set, so SQL run on it (an auditor's too) can reach nothing else."""

VERIFY_MEMORY = "256MB"
"""DuckDB's buffer pool while verifying: the scan reads every page once, and caching them
all would make memory grow with the ledger (a sorted re-scan spills to disk beyond it)."""

LOCK_TIMEOUT_ENV = "ASSAY_LEDGER_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 600.0
"""Seconds to wait for the ledger's lock before giving up: nothing waits forever."""


class LedgerError(Exception):
    """A ledger operation was refused (unknown table or column, conservation broken)."""


class LedgerLockTimeout(LedgerError):
    """Another process held the ledger's lock for longer than the lock timeout."""


@dataclass(frozen=True)
class Verification:
    """The outcome of walking the chain. ``first_bad`` is the seq of the first bad entry."""

    ok: bool
    entries: int
    first_bad: int | None = None
    problem: str | None = None
    checkpoints: int = 0
    since: int = 0
    """Rows of entries up to this seq were not re-read (an incremental verify); 0 = full."""
    rows_checked: int = 0


class Ledger:
    """Append-only access to one ledger file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    # -- writing -------------------------------------------------------------------------

    def append(self, table: str, rows: Rows, run_id: str | None = None) -> int | None:
        """Append one batch to ``table``; the chain seq of its (last) entry, None for no rows."""
        with self.writer() as writer:
            return writer.append(table, rows, run_id)

    def append_many(
        self, batches: Sequence[tuple[str, Rows]], run_id: str | None = None
    ) -> list[int]:
        """Append several batches atomically, one chain entry each (empty batches skipped)."""
        with self.writer() as writer:
            return writer.append_many(batches, run_id)

    @contextmanager
    def writer(self) -> Iterator[LedgerWriter]:
        """Hold the write lock and one connection across many appends, each still atomic."""
        with self._connect(write=True) as con:
            yield LedgerWriter(con)

    def record_stage(
        self,
        stage: str,
        run_id: str,
        records_in: pl.DataFrame,
        kept: pl.DataFrame,
        drops: pl.DataFrame,
    ) -> pl.DataFrame:
        """Check conservation per source and append the drops and the stage counts.

        ``drops`` has columns record_id, source_id, source_key, reason, evidence. Raises
        LedgerError, appending nothing, when in != kept + dropped for any source.
        """
        return self.record_counts(
            stage, run_id, stage_counts(stage, records_in, kept, drops), drops
        )

    def record_counts(
        self, stage: str, run_id: str, counts: pl.DataFrame, drops: pl.DataFrame
    ) -> pl.DataFrame:
        """record_stage for a stage that counted its records itself (counted_stage)."""
        broken = counts.filter(pl.col("records_in") != pl.col("records_out") + pl.col("dropped"))
        if broken.height:
            raise LedgerError(f"{stage}: records lost without a reason: {broken.to_dicts()}")
        drop_rows = drops.select(
            pl.lit(stage).alias("stage"),
            "record_id",
            "source_id",
            "source_key",
            pl.col("reason").cast(pl.String),
            pl.col("evidence").cast(pl.String),
        )
        self.append_many([("drops", drop_rows), ("stage_counts", counts)], run_id)
        return counts

    # -- reading -------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence | None = None) -> pl.DataFrame:
        """Run read-only SQL against the ledger and return the result as a DataFrame."""
        with self.reader() as reader:
            return reader.query(sql, params)

    @contextmanager
    def reader(self) -> Iterator[LedgerReader]:
        """One read-only connection for several queries (a `why` asks five or more)."""
        with self._connect(write=False) as con:
            yield LedgerReader(con)

    def _walk_chain(self) -> Verification:
        """Recompute every batch digest and walk the chain; name the first bad entry."""
        with self._connect(write=False, memory_limit=VERIFY_MEMORY) as con:
            return _walk(con)

    def rebuild_lookups(self) -> None:
        """Derive the lookup tables again from the chained rows (after verify named them)."""
        with self._connect(write=True) as con:
            _build_lookups(con)

    @property
    def checkpoint_log(self) -> Path:
        """Signed checkpoints kept outside the DuckDB file too, so truncating it shows."""
        return self.path.with_name(self.path.name + ".checkpoints.jsonl")

    def checkpoint(self, signer: Signer, reason: str, run_id: str | None = None) -> dict:
        """Sign the chain head (seq, entry_hash); append it to the ledger and the log."""
        with self.writer() as writer:
            head = writer._con.execute(
                "SELECT seq, entry_hash FROM chain ORDER BY seq DESC LIMIT 1"
            ).fetchall()
            seq, entry_hash = head[0] if head else (0, GENESIS)
            row = {
                "seq": seq,
                "entry_hash": entry_hash,
                "signed_at": datetime.now(UTC).isoformat(),
                "reason": reason,
                "key_fingerprint": signer.fingerprint,
                "public_key": signer.public_pem,
            }
            row["signature"] = signer.sign(_checkpoint_payload(row))
            writer.append("checkpoints", [row], run_id)
            log = self.checkpoint_log
            old = log.read_text(encoding="utf-8") if log.exists() else ""
            write_text(old + canonical_json(row) + "\n", log)
        return row

    def verify(
        self, trusted_fingerprint: str | None = None, since_checkpoint: bool = False
    ) -> Verification:
        """Walk the chain, then check every signed checkpoint (in the ledger and in its log).

        A checkpoint whose signature fails, whose key is not ``trusted_fingerprint`` (when
        given), whose entry is gone (truncation) or differs (a consistent rewrite) fails.
        ``since_checkpoint``: re-read only the rows appended after the newest checkpoint that
        holds; the chain's links, every checkpoint and each table's row count are still
        checked in full, but an edit of a row before that checkpoint needs a full verify.
        """
        with self._connect(write=False, memory_limit=VERIFY_MEMORY) as con:
            heads = dict(con.execute("SELECT seq, entry_hash FROM chain").fetchall())
            rows = {canonical_json(r): r for r in _stored_checkpoints(con)}
            if self.checkpoint_log.exists():
                for line in self.checkpoint_log.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        row = json.loads(line)
                        rows.setdefault(canonical_json(row), row)
            checked = [
                (row, _checkpoint_problem(row, heads, trusted_fingerprint))
                for row in sorted(rows.values(), key=lambda r: r["seq"])
            ]
            held = [row["seq"] for row, problem in checked if problem is None]
            since = max(held, default=0) if since_checkpoint else 0
            walked = _walk(con, since)
        if not walked.ok:
            return walked
        for row, problem in checked:
            if problem:
                return Verification(False, walked.entries, row["seq"], problem, len(rows))
        return Verification(
            True,
            walked.entries,
            checkpoints=len(rows),
            since=since,
            rows_checked=walked.rows_checked,
        )

    def export(self, out_dir: str | Path) -> list[Path]:
        """Write every table (and the chain) to Parquet under ``out_dir``, streaming batches.

        The directory never enters SQL: rows come out as Arrow and pyarrow writes the files.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        with self._connect(write=False) as con:
            for table in ["chain", *TABLES]:
                path = out / f"{table}.parquet"
                reader = con.sql(f"SELECT * FROM {table}").to_arrow_reader(65_536)
                with pq.ParquetWriter(path, reader.schema) as sink:
                    for batch in reader:
                        sink.write_batch(batch)
                paths.append(path)
        return paths

    # -- connections ---------------------------------------------------------------------

    def _create(self) -> None:
        """An empty ledger with every table, so that reading a new ledger finds them."""
        with self._connect(write=True) as con:
            con.execute("CHECKPOINT")

    @contextmanager
    def _connect(
        self, write: bool, memory_limit: str | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not write and not self.path.exists():
            self._create()
        with self._lock_path.open("a") as lock:
            _lock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH, self.path)
            con = duckdb.connect(str(self.path), read_only=not write, config=SANDBOX)
            try:
                con.execute("SET TimeZone = 'UTC'")
                if memory_limit is not None:
                    con.execute(f"SET memory_limit = '{memory_limit}'")
                con.execute("SET lock_configuration = true")
                if write:
                    _ensure_schema(con)
                yield con
            finally:
                con.close()


def _lock(lock: object, mode: int, path: Path) -> None:
    """flock with a deadline: poll without blocking, raise LedgerLockTimeout when it passes."""
    timeout = float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT))
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LedgerLockTimeout(
                    f"ledger {path} is locked by another process for over {timeout:g} s"
                ) from None
            time.sleep(0.05)


class LedgerReader:
    """Read-only SQL through one open connection; made by ``Ledger.reader()``."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._tables: set[str] | None = None

    def query(self, sql: str, params: Sequence | None = None) -> pl.DataFrame:
        return self._con.sql(sql, params=list(params) if params else None).pl()

    def tables(self) -> set[str]:
        """The tables present (read once: nothing can add one while this reader is open)."""
        if self._tables is None:
            self._tables = _present_tables(self._con)
        return self._tables


class LedgerWriter:
    """Appends through one open connection; made by ``Ledger.writer()``."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def append(self, table: str, rows: Rows, run_id: str | None = None) -> int | None:
        seqs = self.append_many([(table, rows)], run_id)
        return seqs[-1] if seqs else None

    def append_many(
        self, batches: Sequence[tuple[str, Rows]], run_id: str | None = None
    ) -> list[int]:
        """Append several batches atomically, one chain entry each (empty batches skipped;
        a batch of more than MAX_ENTRY_ROWS rows is split into several entries)."""
        arrows = [(table, _as_arrow(table, rows, run_id)) for table, rows in batches]
        self._con.begin()
        try:
            seqs = [
                self._append(table, arrow.slice(start, MAX_ENTRY_ROWS))
                for table, arrow in arrows
                for start in range(0, arrow.num_rows, MAX_ENTRY_ROWS)
            ]
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise
        return seqs

    def _append(self, table: str, batch: pa.Table) -> int:
        con = self._con
        head = con.execute("SELECT seq, entry_hash FROM chain ORDER BY seq DESC LIMIT 1").fetchall()
        seq, prev_hash = (head[0][0] + 1, head[0][1]) if head else (1, GENESIS)
        now = datetime.now(UTC)
        n_rows = batch.num_rows
        batch = batch.append_column("entry_seq", pa.array(np.full(n_rows, seq, np.int64)))
        batch = batch.append_column("row_no", pa.array(np.arange(n_rows, dtype=np.int64)))
        batch = batch.append_column("recorded_at", _timestamps(now, n_rows))
        digest, lookups = self._insert(table, batch, seq)
        if digest is None:  # a column DuckDB converts on the way in: hash what it stored
            digest = stream_entries(con, table, f"entry_seq = {seq}")[seq][0]
            lookups = _stored_lookups(con, table, seq)
        write_lookups(con, lookups)
        entry_hash = _entry_hash(prev_hash, digest)
        con.execute(
            "INSERT INTO chain VALUES (?, ?, ?, ?, ?, ?, ?)",
            [seq, table, n_rows, digest, prev_hash, entry_hash, now],
        )
        return seq

    def _insert(self, table: str, batch: pa.Table, seq: int) -> tuple[str | None, dict]:
        """INSERT the batch; hash it and derive its lookup rows from the same Arrow buffers:
        (digest, or None when DuckDB converts a column on the way in; lookup rows).

        The hashing runs in a thread while DuckDB inserts: both release the GIL, and the
        INSERT alone leaves part of the cores idle."""
        columns = canonical_columns(self._con, table)
        # one chunk per column, copied once here: the hashing would copy a chunked column
        # again, and insert_arrow needs one chunk anyway (then it copies nothing)
        batch = batch.combine_chunks()
        with ThreadPoolExecutor(1, thread_name_prefix="ledger-digest") as hashing:
            derived = hashing.submit(_digest_and_lookups, table, columns, batch, seq)
            insert_arrow(self._con, table, batch)
            return derived.result()


def _digest_and_lookups(
    table: str, columns: list[Column], batch: pa.Table, seq: int
) -> tuple[str | None, dict[str, pa.Table]]:
    digest = arrow_digest(table, columns, batch)
    indexed = table in INDEXED_TABLES
    return digest, (lookup_rows(batch, seq) if indexed and digest else {})


def _stored_lookups(con: duckdb.DuckDBPyConnection, table: str, seq: int) -> dict[str, pa.Table]:
    """An entry's lookup rows derived from its stored rows."""
    if table not in INDEXED_TABLES:
        return {}
    stored = con.sql(
        f"SELECT record_id, source_key, row_no FROM {table} WHERE entry_seq = {int(seq)}"
    ).to_arrow_table()
    return lookup_rows(stored, seq)


def _timestamps(moment: datetime, n: int) -> pa.Array:
    """``n`` copies of one UTC instant, microseconds, as DuckDB stores a TIMESTAMPTZ."""
    micros = pa.scalar(moment, pa.timestamp("us", tz="UTC")).value
    return pa.array(np.full(n, micros, np.int64)).cast(pa.timestamp("us", tz="UTC"))


def stage_counts(
    stage: str, records_in: pl.DataFrame, kept: pl.DataFrame, drops: pl.DataFrame
) -> pl.DataFrame:
    """One row per source: records_in, records_out, dropped."""

    def count(frame: pl.DataFrame) -> dict[str, int]:
        return dict(frame.group_by("source_id").len().iter_rows())

    return counted_stage(stage, count(records_in), count(kept), count(drops))


def counted_stage(
    stage: str,
    records_in: Mapping[str, int],
    records_out: Mapping[str, int],
    dropped: Mapping[str, int],
) -> pl.DataFrame:
    """stage_counts from counts per source, as a stage that streams its records keeps them."""
    rows = [
        {
            "stage": stage,
            "source_id": s,
            "records_in": records_in.get(s, 0),
            "records_out": records_out.get(s, 0),
            "dropped": dropped.get(s, 0),
        }
        for s in sorted(records_in.keys() | records_out.keys() | dropped.keys())
    ]
    schema = {"stage": pl.String(), "source_id": pl.String()}
    schema |= {c: pl.Int64() for c in ("records_in", "records_out", "dropped")}
    return pl.DataFrame(rows, schema=schema)


def _as_arrow(table: str, rows: Rows, run_id: str | None) -> pa.Table:
    if table not in TABLES:
        raise LedgerError(f"unknown ledger table {table!r}; declare it in ledger_tables.py")
    if isinstance(rows, pa.Table):
        arrow = rows
    elif isinstance(rows, pl.DataFrame):
        arrow = rows.to_arrow()
    else:
        arrow = pl.DataFrame(list(rows), infer_schema_length=None).to_arrow()
    columns = _declared_columns(table)
    if run_id is not None and "run_id" in columns and "run_id" not in arrow.column_names:
        arrow = arrow.append_column("run_id", pa.repeat(pa.scalar(run_id), arrow.num_rows))
    unknown = [c for c in arrow.column_names if c not in columns]
    if unknown:
        raise LedgerError(f"table {table!r} has no column(s) {unknown}")
    return arrow


def _declared_columns(table: str) -> list[str]:
    return [part.split()[0] for part in TABLES[table].split(",")]


def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS chain ({CHAIN_DDL})")
    for table, ddl in TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ddl}, {BOOKKEEPING_DDL})")
    if not set(LOOKUPS) <= _present_tables(con):
        _build_lookups(con)


def _present_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _build_lookups(con: duckdb.DuckDBPyConnection) -> None:
    """Create the lookup tables and derive them from every indexed entry (a ledger written
    before they existed), one entry at a time, in one transaction."""
    con.begin()
    try:
        for table in LOOKUPS:
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"CREATE TABLE {table} ({LOOKUP_DDL})")
        listed = ", ".join(f"'{t}'" for t in INDEXED_TABLES)
        entries = con.execute(
            f"SELECT seq, tbl FROM chain WHERE tbl IN ({listed}) ORDER BY seq"
        ).fetchall()
        for seq, table in entries:
            write_lookups(con, _stored_lookups(con, table, seq))
        con.commit()
    except BaseException:
        con.rollback()
        raise


def _entry_hash(prev_hash: str, batch_digest: str) -> str:
    return hashlib.sha256((prev_hash + batch_digest).encode("ascii")).hexdigest()


def _stored_checkpoints(con: duckdb.DuckDBPyConnection) -> list[dict]:
    if "checkpoints" not in _present_tables(con):
        return []
    cursor = con.execute(
        "SELECT seq, entry_hash, signed_at, reason, key_fingerprint, public_key,"
        " signature FROM checkpoints ORDER BY entry_seq"
    )
    names = [d[0] for d in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        row["signed_at"] = row["signed_at"].isoformat()  # as it was signed
        rows.append(row)
    return rows


def _walk(con: duckdb.DuckDBPyConnection, since: int = 0) -> Verification:
    """Walk the whole chain's links; recompute the digests (and lookup rows) of the entries
    after ``since`` from their stored rows, streamed; name the first bad entry."""
    chain = con.execute(
        "SELECT seq, tbl, n_rows, batch_digest, prev_hash, entry_hash FROM chain ORDER BY seq"
    ).fetchall()
    present = _present_tables(con)
    # A table added to TABLES after this file was last written has no rows yet.
    tables = [t for t in TABLES if t in present]
    indexed = set(LOOKUPS) <= present
    where = f"entry_seq > {since}"
    stored: dict[str, dict[int, tuple[str, int]]] = {}
    if since:  # rows elsewhere are accounted for by _row_counts
        tables = [t for t in tables if any(tbl == t and seq > since for seq, tbl, *_ in chain)]
    derived = DerivedLookups()
    for table in tables:
        consumer = derived if indexed and table in INDEXED_TABLES else None
        stored[table] = stream_entries(con, table, where, consumer=consumer)
        derived.finish()
    for table in tables:  # entries written before format v2 are checked by their own SQL
        v1 = [s for s, t, _, d, _, _ in chain if t == table and s > since and not _is_v2(d)]
        for seq, digest in v1_digests(con, table, v1).items():
            stored[table][seq] = (digest, stored[table].get(seq, ("", 0))[1])
    rows_checked = sum(n for digests in stored.values() for _, n in digests.values())
    problem = _walk_entries(chain, stored, since) or _orphans(stored, chain)
    if problem is None and since:
        problem = _row_counts(con, [t for t in TABLES if t in present], chain)
    if problem is None and indexed:
        problem = _lookup_problem(con, derived, where)
    if problem is not None:
        return Verification(False, len(chain), problem[0], problem[1], rows_checked=rows_checked)
    return Verification(True, len(chain), rows_checked=rows_checked)


def _is_v2(digest: str | None) -> bool:
    return digest is not None and digest.startswith(V2)


def _walk_entries(
    chain: list[tuple], stored: dict[str, dict[int, tuple[str, int]]], since: int
) -> tuple[int, str] | None:
    prev = GENESIS
    for expected_seq, (seq, table, n_rows, digest, prev_hash, entry_hash) in enumerate(chain, 1):
        problem = None
        if seq != expected_seq:
            problem = f"chain entry {expected_seq} is missing (next is {seq})"
        elif prev_hash != prev:
            problem = "prev_hash does not match the previous entry"
        elif entry_hash != _entry_hash(prev_hash, digest):
            problem = "entry_hash does not match sha256(prev_hash || batch_digest)"
        elif seq > since and stored.get(table, {}).get(seq) != (digest, n_rows):
            problem = f"rows of {table} no longer match the entry's digest"
        if problem:
            return expected_seq, problem
        prev = entry_hash
    return None


def _orphans(
    stored: dict[str, dict[int, tuple[str, int]]], chain: list[tuple]
) -> tuple[int, str] | None:
    claimed = {(table, seq) for seq, table, *_ in chain}
    for table, digests in stored.items():
        orphans = sorted(seq for seq in digests if (table, seq) not in claimed)
        if orphans:
            return orphans[0], f"rows of {table} belong to no chain entry"
    return None


def _row_counts(
    con: duckdb.DuckDBPyConnection, tables: list[str], chain: list[tuple]
) -> tuple[int, str] | None:
    """Each table holds exactly the rows its entries claim: an insert or delete anywhere,
    even before the checkpoint an incremental verify starts from, changes a count."""
    for table in tables:
        claimed = sum(n for _, tbl, n, *_ in chain if tbl == table)
        held = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        if held != claimed:
            first = next((seq for seq, tbl, *_ in chain if tbl == table), 0)
            return first, f"{table} holds {held} rows but its entries claim {claimed}"
    return None


def _lookup_problem(
    con: duckdb.DuckDBPyConnection, derived: DerivedLookups, where: str
) -> tuple[int, str] | None:
    """The lookup rows of each entry are exactly those derived from its chained rows."""
    for table, expected in derived.digests.items():
        held, misplaced = stored_lookup_digests(con, table, where)
        seqs = expected.keys() | held.keys()
        bad = sorted(seq for seq in seqs if expected.get(seq) != held.get(seq))
        if misplaced is not None:
            bad = sorted({*bad, misplaced})
        if bad:
            detail = f"{table} rows of entry {bad[0]} differ from the rows they index"
            return bad[0], detail + " (a derived table: Ledger.rebuild_lookups() rewrites it)"
    return None


def _checkpoint_payload(row: dict) -> bytes:
    """What a checkpoint's signature covers: every field but the signature."""
    return canonical_json({k: v for k, v in row.items() if k != "signature"}).encode("utf-8")


def _checkpoint_problem(row: dict, heads: dict[int, str], trusted: str | None) -> str | None:
    seq, signed_at = row["seq"], row["signed_at"]
    what = f"checkpoint of entry {seq} signed at {signed_at}"
    if not verify_signature(row["public_key"], _checkpoint_payload(row), row["signature"]):
        return f"{what}: the signature does not verify (checkpoint altered or forged)"
    if trusted is not None and row["key_fingerprint"] != trusted:
        return f"{what}: signed by key {row['key_fingerprint'][:16]}…, not the trusted key"
    if seq == 0:
        return None
    if seq not in heads:
        return f"{what}: entry {seq} is gone; the chain was truncated to {len(heads)} entries"
    if heads[seq] != row["entry_hash"]:
        return f"{what}: entry {seq}'s hash differs from the signed one; the chain was rewritten"
    return None


def evidence(**facts: object) -> str:
    """A drop's evidence as a compact, key-sorted JSON string."""
    return canonical_json(facts)
