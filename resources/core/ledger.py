"""The provenance ledger: an append-only DuckDB file whose every append extends a hash chain.

Each append writes one batch of rows to one table and one row to ``chain``:
entry_hash = sha256(prev_hash || batch_digest), where batch_digest is computed by DuckDB from the
stored rows themselves (so verification recomputes exactly what was hashed). Changing, deleting
or inserting any row breaks the digest of its entry or leaves a row no entry accounts for.

DuckDB allows one writer per file, across processes too: every connection takes an flock on a
sibling ``.lock`` file (exclusive to write, shared to read) for as long as it is open.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

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

SANDBOX = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
}
"""Every ledger connection: no file but the ledger, no extension; its settings are locked once
the time zone is set, so SQL run on it (an auditor's too) can reach nothing else."""

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


class Ledger:
    """Append-only access to one ledger file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    # -- writing -------------------------------------------------------------------------

    def append(self, table: str, rows: Rows, run_id: str | None = None) -> int | None:
        """Append one batch to ``table``; the new entry's chain seq (None for no rows)."""
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
        counts = stage_counts(stage, records_in, kept, drops)
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
        with self._connect(write=False) as con:
            return con.sql(sql, params=list(params) if params else None).pl()

    def _walk_chain(self) -> Verification:
        """Recompute every batch digest and walk the chain; name the first bad entry."""
        with self._connect(write=False) as con:
            chain = con.execute(
                "SELECT seq, tbl, n_rows, batch_digest, prev_hash, entry_hash FROM chain"
                " ORDER BY seq"
            ).fetchall()
            present = {
                r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            # A table added to TABLES after this file was last written has no rows yet.
            stored = {t: _stored_digests(con, t) for t in TABLES if t in present}
        return _walk(chain, stored)

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

    def verify(self, trusted_fingerprint: str | None = None) -> Verification:
        """Walk the chain, then check every signed checkpoint (in the ledger and in its log).

        A checkpoint whose signature fails, whose key is not ``trusted_fingerprint`` (when
        given), whose entry is gone (truncation) or differs (a consistent rewrite) fails.
        """
        walked = self._walk_chain()
        if not walked.ok:
            return walked
        with self._connect(write=False) as con:
            heads = dict(con.execute("SELECT seq, entry_hash FROM chain").fetchall())
            tables = {
                r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            stored = []
            if "checkpoints" in tables:
                cursor = con.execute(
                    "SELECT seq, entry_hash, signed_at, reason, key_fingerprint, public_key,"
                    " signature FROM checkpoints ORDER BY entry_seq"
                )
                names = [d[0] for d in cursor.description]
                for values in cursor.fetchall():
                    row = dict(zip(names, values, strict=True))
                    row["signed_at"] = row["signed_at"].isoformat()  # as it was signed
                    stored.append(row)
        rows = {canonical_json(r): r for r in stored}
        if self.checkpoint_log.exists():
            for line in self.checkpoint_log.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    rows.setdefault(canonical_json(row), row)
        for row in sorted(rows.values(), key=lambda r: r["seq"]):
            problem = _checkpoint_problem(row, heads, trusted_fingerprint)
            if problem:
                return Verification(False, walked.entries, row["seq"], problem, len(rows))
        return Verification(True, walked.entries, checkpoints=len(rows))

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
    def _connect(self, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not write and not self.path.exists():
            self._create()
        with self._lock_path.open("a") as lock:
            _lock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH, self.path)
            con = duckdb.connect(str(self.path), read_only=not write, config=SANDBOX)
            try:
                con.execute("SET TimeZone = 'UTC'")
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


class LedgerWriter:
    """Appends through one open connection; made by ``Ledger.writer()``."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def append(self, table: str, rows: Rows, run_id: str | None = None) -> int | None:
        seqs = self.append_many([(table, rows)], run_id)
        return seqs[0] if seqs else None

    def append_many(
        self, batches: Sequence[tuple[str, Rows]], run_id: str | None = None
    ) -> list[int]:
        """Append several batches atomically, one chain entry each (empty batches skipped)."""
        arrows = [(table, _as_arrow(table, rows, run_id)) for table, rows in batches]
        self._con.begin()
        try:
            seqs = [self._append(t, a) for t, a in arrows if a.num_rows]
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
        batch = batch.append_column("entry_seq", pa.array([seq] * batch.num_rows, pa.int64()))
        batch = batch.append_column("row_no", pa.array(range(batch.num_rows), pa.int64()))
        con.register("_batch", batch)
        try:
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT *, ?::TIMESTAMPTZ AS recorded_at FROM _batch",
                [now],
            )
        finally:
            con.unregister("_batch")
        digest = con.execute(_digest_sql(con, table, f"entry_seq = {seq}")).fetchall()[0][1]
        entry_hash = _entry_hash(prev_hash, digest)
        con.execute(
            "INSERT INTO chain VALUES (?, ?, ?, ?, ?, ?, ?)",
            [seq, table, batch.num_rows, digest, prev_hash, entry_hash, now],
        )
        return seq


def stage_counts(
    stage: str, records_in: pl.DataFrame, kept: pl.DataFrame, drops: pl.DataFrame
) -> pl.DataFrame:
    """One row per source: records_in, records_out, dropped."""

    def count(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.group_by("source_id").agg(pl.len().cast(pl.Int64).alias(name))

    sources = pl.concat([f.select("source_id") for f in (records_in, kept, drops)]).unique()
    out = sources
    for frame, name in ((records_in, "records_in"), (kept, "records_out"), (drops, "dropped")):
        out = out.join(count(frame, name), on="source_id", how="left")
    return (
        out.fill_null(0)
        .with_columns(pl.lit(stage).alias("stage"))
        .select("stage", "source_id", "records_in", "records_out", "dropped")
        .sort("source_id")
    )


def _as_arrow(table: str, rows: Rows, run_id: str | None) -> pa.Table:
    if table not in TABLES:
        raise LedgerError(f"unknown ledger table {table!r}; declare it in ledger_tables.py")
    if isinstance(rows, pa.Table):
        frame = pl.from_arrow(rows)
    elif isinstance(rows, pl.DataFrame):
        frame = rows
    else:
        frame = pl.DataFrame(list(rows), infer_schema_length=None)
    columns = _declared_columns(table)
    if run_id is not None and "run_id" in columns and "run_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(run_id).alias("run_id"))
    unknown = [c for c in frame.columns if c not in columns]
    if unknown:
        raise LedgerError(f"table {table!r} has no column(s) {unknown}")
    return frame.to_arrow()


def _declared_columns(table: str) -> list[str]:
    return [part.split()[0] for part in TABLES[table].split(",")]


def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS chain ({CHAIN_DDL})")
    for table, ddl in TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ddl}, {BOOKKEEPING_DDL})")


def _digest_sql(con: duckdb.DuckDBPyConnection, table: str, where: str = "true") -> str:
    """SQL giving (entry_seq, digest) per entry, over every stored column but entry_seq."""
    names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] != "entry_seq"]
    # Length-prefixed fields, so no value can forge a field boundary.
    fields = " || ".join(
        f"coalesce(length(CAST({n} AS VARCHAR)) || ':' || CAST({n} AS VARCHAR), '-') || ';'"
        for n in names
    )
    return (
        f"SELECT entry_seq, sha256('{table}|' || string_agg(sha256({fields}), '' ORDER BY row_no))"
        f" FROM {table} WHERE {where} GROUP BY entry_seq"
    )


def _stored_digests(con: duckdb.DuckDBPyConnection, table: str) -> dict[int, tuple[str, int]]:
    sql = _digest_sql(con, table)
    counted = f"SELECT d.*, c.n FROM ({sql}) d JOIN (SELECT entry_seq, count(*) n FROM {table}"
    counted += " GROUP BY entry_seq) c USING (entry_seq)"
    return {seq: (digest, n) for seq, digest, n in con.execute(counted).fetchall()}


def _entry_hash(prev_hash: str, batch_digest: str) -> str:
    return hashlib.sha256((prev_hash + batch_digest).encode("ascii")).hexdigest()


def _walk(chain: list[tuple], stored: dict[str, dict[int, tuple[str, int]]]) -> Verification:
    prev = GENESIS
    claimed: set[tuple[str, int]] = set()
    for expected_seq, (seq, table, n_rows, digest, prev_hash, entry_hash) in enumerate(chain, 1):
        problem = None
        if seq != expected_seq:
            problem = f"chain entry {expected_seq} is missing (next is {seq})"
        elif prev_hash != prev:
            problem = "prev_hash does not match the previous entry"
        elif entry_hash != _entry_hash(prev_hash, digest):
            problem = "entry_hash does not match sha256(prev_hash || batch_digest)"
        elif stored.get(table, {}).get(seq) != (digest, n_rows):
            problem = f"rows of {table} no longer match the entry's digest"
        if problem:
            return Verification(False, len(chain), expected_seq, problem)
        claimed.add((table, seq))
        prev = entry_hash
    for table, digests in stored.items():
        orphans = sorted(seq for seq in digests if (table, seq) not in claimed)
        if orphans:
            detail = f"rows of {table} belong to no chain entry"
            return Verification(False, len(chain), orphans[0], detail)
    return Verification(True, len(chain))


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
