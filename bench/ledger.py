"""The ledger at scale: append rows/s, `why` latency, verify time and peak RSS, bytes/record.

    nice -n 10 .venv/bin/python bench/ledger.py                    # 1M and 10M records
    nice -n 10 .venv/bin/python bench/ledger.py --sizes 1000000    # one size
    nice -n 10 .venv/bin/python bench/ledger.py --hundred-million  # adds 100M (on disk, slow;
                                                                   # no baselines above 20M)

Synthetic record rows (sha256-like hex record ids, 100 sources, source keys like
``file-00042.jsonl:117``, 1% of items also dropped at ingest) are appended through
``Ledger.append`` in batches of 1M rows. Every measurement runs in its own child process, so
its peak RSS is its own. Each figure is printed beside a baseline on the same ledger: `why`
beside the scan queries it replaced (resources.core.audit.*_SCAN, over 20 of the keys),
append beside the same rows INSERTed into plain tables with and without the v1 digest (sha256
per row and string_agg inside DuckDB, what every append and verify did before format v2), and
verify beside the v1 digest query (skipped above 20M rows: it holds every row in memory).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ASSAY_PII_SALT", "bench-ledger")  # why hashes keys; no PII here

BATCH = 1_000_000
KEYS = 100
SCAN_KEYS = 20
"""The scan baseline takes seconds a question at 10M: its median is over fewer keys."""
INCREMENT = 100_000
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def synthetic_records(start: int, n: int, seed: int) -> pa.Table:
    """n record rows, vectorised: random 64-hex ids, 100 sources, file:line source keys."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    chars = np.empty((n, 64), np.uint8)
    chars[:, 0::2], chars[:, 1::2] = HEX[raw >> 4], HEX[raw & 15]
    ids = pa.array(chars.view("S64").ravel()).cast(pa.string())
    index = np.arange(start, start + n)
    source = pc.binary_join_element_wise("src-", pa.array(index % 100).cast(pa.string()), "")
    key = pc.binary_join_element_wise(
        "file-",
        pc.utf8_lpad(pa.array(index // 1000).cast(pa.string()), 5, "0"),
        ".jsonl:",
        pa.array(index % 1000).cast(pa.string()),
        "",
    )
    return pa.table(
        {
            "record_id": ids,
            "source_id": source,
            "source_key": key,
            "kind": pa.array(np.full(n, "text")),
            "size_bytes": pa.array(rng.integers(50, 5000, n)),
        }
    )


def _drops(records: pa.Table) -> pa.Table:
    """1% of the items also dropped at ingest (what `why` unions with records)."""
    picked = records.slice(0, len(records) // 100)
    n = len(picked)
    return pa.table(
        {
            "stage": pa.array(np.full(n, "ingest")),
            "record_id": picked["record_id"],
            "source_id": picked["source_id"],
            "source_key": picked["source_key"],
            "reason": pa.array(np.full(n, "malformed")),
            "evidence": pa.array(np.full(n, '{"detail":"synthetic"}')),
        }
    )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: str, n: int) -> dict:
    """Append n records (and 1% drops) in batches; time only the appends."""
    from resources.core.ledger import Ledger

    ledger = Ledger(path)
    seconds, rows = 0.0, 0
    ledger.append("runs", [{"run_id": "bench", "job": "bench", "code_version": "0"}], "bench")
    with ledger.writer() as writer:
        for start in range(0, n, BATCH):
            batch = synthetic_records(start, min(BATCH, n - start), seed=start)
            drops = _drops(batch)
            began = time.perf_counter()
            writer.append_many([("records", batch), ("drops", drops)], "bench")
            seconds += time.perf_counter() - began
            rows += len(batch) + len(drops)
    size = Path(path).stat().st_size
    return {"append_rows_per_s": rows / seconds, "bytes_per_record": size / n, "rss_mb": _peak_mb()}


def append_plain(path: str, n: int, digest: bool) -> dict:
    """The same appends into plain tables: INSERT and commit per batch, with the v1 digest
    of each batch (what an append cost before v2) or without any (DuckDB's own ceiling)."""
    import duckdb

    from resources.core.ledger import BOOKKEEPING_DDL
    from resources.core.ledger_digest import v1_sql
    from resources.core.ledger_tables import TABLES

    con = duckdb.connect(path)
    for table in ("records", "drops"):
        con.execute(f"CREATE TABLE {table} ({TABLES[table]}, {BOOKKEEPING_DDL})")
    seconds, rows, seq = 0.0, 0, 0
    for start in range(0, n, BATCH):
        batch = synthetic_records(start, min(BATCH, n - start), seed=start)
        began = time.perf_counter()
        con.begin()
        for table, part in (("records", batch), ("drops", _drops(batch))):
            seq += 1
            part = part.append_column("entry_seq", pa.array(np.full(len(part), seq)))
            part = part.append_column("row_no", pa.array(np.arange(len(part))))
            con.register("_batch", part)
            con.execute(f"INSERT INTO {table} BY NAME SELECT *, now() AS recorded_at FROM _batch")
            con.unregister("_batch")
            if digest:
                con.execute(v1_sql(con, table, f"entry_seq = {seq}")).fetchall()
            rows += len(part)
        con.commit()
        seconds += time.perf_counter() - began
    con.close()
    return {"append_rows_per_s": rows / seconds}


def why_latency(path: str, n: int, mode: str) -> dict:
    """Median and p99 over 100 random keys of audit.why on one open reader, through the
    lookups or (the baseline) the scan queries; and cold, a connection per question."""
    from resources.core import audit
    from resources.core.ledger import Ledger
    from resources.core.ledger_lookup import LOOKUPS

    ledger = Ledger(path)
    with ledger.reader() as reader:
        rows = reader.query(
            f"SELECT record_id, source_key FROM records USING SAMPLE {KEYS} ROWS (reservoir, 7)"
        ).to_dicts()
    keys = {
        "record_id": [r["record_id"] for r in rows],
        "source_key": [r["source_key"] for r in rows],
        "prefix": [r["record_id"][:12] for r in rows],
    }
    out = {}
    with ledger.reader() as reader:
        if mode == "scan":  # the baseline: the same why, through the *_SCAN queries
            reader._tables = reader.tables() - set(LOOKUPS)
        for kind, values in keys.items():
            times = []
            for value in values if mode == "lookup" else values[:SCAN_KEYS]:
                began = time.perf_counter()
                found = audit.why(reader, value)
                times.append(time.perf_counter() - began)
                assert found, f"{kind} {value} not found"
            out[kind] = (statistics.median(times) * 1000, float(np.percentile(times, 99)) * 1000)
    if mode == "lookup":  # as the CLI runs it: a new connection per question
        times = []
        for value in keys["record_id"][:20]:
            began = time.perf_counter()
            audit.why(ledger, value)
            times.append(time.perf_counter() - began)
        out["cold"] = statistics.median(times) * 1000
        out["open"] = _open_ms(ledger)
    out["rss_mb"] = _peak_mb()
    return out


def _open_ms(ledger) -> float:
    """Median time to open and close a reader: what each CLI call pays whatever the size."""
    times = []
    for _ in range(10):
        began = time.perf_counter()
        with ledger.reader():
            pass
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def verify(path: str, since_checkpoint: bool) -> dict:
    from resources.core.ledger import Ledger

    began = time.perf_counter()
    result = Ledger(path).verify(since_checkpoint=since_checkpoint)
    seconds = time.perf_counter() - began
    assert result.ok, result
    return {"seconds": seconds, "rows": result.rows_checked, "rss_mb": _peak_mb()}


def verify_v1(path: str) -> dict:
    """The v1 verify's digest query over the records table (its GROUP BY holds every row)."""
    import duckdb

    from resources.core.ledger_digest import v1_sql

    con = duckdb.connect(path, read_only=True)
    began = time.perf_counter()
    con.execute(v1_sql(con, "records")).fetchall()
    return {"seconds": time.perf_counter() - began, "rss_mb": _peak_mb()}


def checkpoint_and_append(path: str, n: int) -> dict:
    """Sign the head, then append INCREMENT more records: what a daily verify would see."""
    from resources.core.ledger import Ledger
    from resources.core.signing import Signer

    ledger = Ledger(path)
    ledger.checkpoint(Signer.generate(), "bench")
    ledger.append("records", synthetic_records(n, INCREMENT, seed=n), "bench")
    return {}


def _child(target, args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(target, args)


def bench(n: int, root: Path, baselines: bool) -> None:
    path = str(root / f"ledger-{n}.duckdb")
    for suffix in ("", ".lock", ".checkpoints.jsonl"):
        Path(path + suffix).unlink(missing_ok=True)
    built = _child(build, (path, n))
    if baselines:
        old_append = _child(append_plain, (str(root / f"v1-{n}.duckdb"), n, True))
        Path(root / f"v1-{n}.duckdb").unlink()
        raw_append = _child(append_plain, (str(root / f"raw-{n}.duckdb"), n, False))
        Path(root / f"raw-{n}.duckdb").unlink()
    lookup = _child(why_latency, (path, n, "lookup"))
    scan = _child(why_latency, (path, n, "scan")) if baselines else None
    full = _child(verify, (path, False))
    old_verify = _child(verify_v1, (path,)) if baselines and n <= 20_000_000 else None
    _child(checkpoint_and_append, (path, n))
    incremental = _child(verify, (path, True))
    print(f"\n== {n:,} records  ({built['bytes_per_record']:.0f} ledger bytes/record)")
    rate = built["append_rows_per_s"]
    line = f"append        {rate:>12,.0f} rows/s"
    if baselines:
        old_rate, raw_rate = old_append["append_rows_per_s"], raw_append["append_rows_per_s"]
        line += f"   v1 {old_rate:>10,.0f} rows/s   x{rate / old_rate:.1f}"
        line += f"   (INSERT+commit alone {raw_rate:,.0f})"
    print(line)
    for kind in ("record_id", "source_key", "prefix"):
        med, p99 = lookup[kind]
        line = f"why {kind:<10} median {med:7.1f} ms  p99 {p99:7.1f} ms"
        if scan is not None:
            smed, smax = scan[kind]
            line += f"   scan median {smed:7.1f} ms  max {smax:7.1f} ms   x{smed / med:.0f}"
        print(line)
    print(
        f"why, cold     median {lookup['cold']:7.1f} ms  (record_id, a new connection each;"
        f" opening one alone: {lookup['open']:.1f} ms)"
    )
    baseline = "v1 digest query skipped (it holds every row in memory)" if baselines else ""
    if old_verify is not None:
        baseline = (
            f"v1 digest query {old_verify['seconds']:7.2f} s"
            f"  peak RSS {old_verify['rss_mb']:6.0f} MB"
        )
    print(f"verify full   {full['seconds']:7.2f} s  peak RSS {full['rss_mb']:6.0f} MB   {baseline}")
    print(
        f"verify incr.  {incremental['seconds']:7.2f} s  peak RSS {incremental['rss_mb']:6.0f} MB"
        f"   ({incremental['rows']:,} rows re-read after the checkpoint;"
        f" full {full['seconds'] / incremental['seconds']:.0f}x longer)"
    )
    for suffix in ("", ".lock", ".checkpoints.jsonl"):
        Path(path + suffix).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--hundred-million", action="store_true", help="also 100M records")
    parser.add_argument("--no-baselines", action="store_true", help="skip the v1/scan runs")
    parser.add_argument("--dir", default=None, help="where the ledgers go (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.hundred_million:
        sizes.append(100_000_000)
        os.nice(10)
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        for n in sizes:
            bench(n, Path(root), baselines=not (args.no_baselines or n > 20_000_000))


if __name__ == "__main__":
    main()
