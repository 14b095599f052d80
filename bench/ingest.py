"""Ingest benchmark: throughput and peak memory of resources.ingest.stage.ingest_source, and
the cost of a bulk ledger append next to a naive row-by-row DuckDB INSERT.

    nice -n 10 .venv/bin/python bench/ingest.py            # 100k, 1M and a ~2 GB JSONL file
    nice -n 10 .venv/bin/python bench/ingest.py --big-gb 0.5 --sizes 100000

Each ingest runs in its own subprocess so its peak RSS (ru_maxrss from wait4) is its own. The
synthetic files go to a temporary directory under /tmp, removed at the end. No Dagster here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script: import this checkout's packages

VOCABULARY = """
the of and to in a is that for it as was with be by on not he this are or his from at which but
have an they you were her she there been one all we their has would when if so cluster replica
snapshot partition latency schema index commit query transaction rows garlic broth onions skillet
pastry dough oven simmer butter knife recipe spices sauce
"""
SEED = 20260122
POOL = 4096  # distinct texts; a counter makes every record's text unique anyway
LEDGER_ROWS = 1_000_000
NAIVE_ROWS = 20_000
NAIVE_AUTOCOMMIT_ROWS = 2_000  # about 100 rows/s: each row is a commit to disk


# -- synthetic corpus ----------------------------------------------------------------------


def _text_pool(rng: random.Random) -> list[bytes]:
    """Sentences of 300 to 700 bytes, JSON-safe (plain ASCII words, no quotes)."""
    words_list = VOCABULARY.split()
    pool = []
    for _ in range(POOL):
        target = rng.randint(300, 700)
        words: list[str] = []
        size = 0
        while size < target:
            word = rng.choice(words_list)
            words.append(word)
            size += len(word) + 1
        pool.append(" ".join(words).capitalize().encode("ascii") + b".")
    return pool


def write_jsonl(path: Path, *, records: int | None = None, target_bytes: int | None = None) -> int:
    """Write synthetic JSONL (a count of records, or until a size); returns the record count."""
    pool = _text_pool(random.Random(SEED))
    written = n = 0
    block = 10_000
    with path.open("wb", buffering=1 << 22) as out:
        while (records is None or n < records) and (target_bytes is None or written < target_bytes):
            stop = n + block if records is None else min(n + block, records)
            chunk = b"".join(
                b'{"id":"r%09d","text":"%s #%d"}\n' % (i, pool[i % POOL], i) for i in range(n, stop)
            )
            out.write(chunk)
            written += len(chunk)
            n = stop
    return n


# -- children: one measured job each ---------------------------------------------------------


def child_ingest(file: Path, work: Path) -> dict:
    import psutil

    from pipelines.params import Policy, Source
    from resources.core.corpus import Corpus
    from resources.core.ledger import Ledger
    from resources.ingest.readers import ReadSpec
    from resources.ingest.stage import Screening, ingest_source
    from resources.screen.config import ScreenConfig

    source = Source(
        id="bench",
        path=str(file),
        format="jsonl",
        text_field="text",
        id_field="id",
        license="CC0-1.0",
        consent="public_domain",
        uri="file:///bench",
        retrieved_at=datetime(2026, 1, 1, tzinfo=UTC),
        owner="bench@example.org",
    )
    spec = ReadSpec(source.text_field, source.id_field, 1_000_000, 10_000)
    # No list (said explicitly): every record is still hashed at the door, as ingest always
    # does; bench/screen.py measures the door with and without a list.
    screen = ScreenConfig(hashlists_dir="no-lists", require_lists=False, hash_cache="cache.parquet")
    screening = Screening.from_config(screen, Corpus(work, work, (source,), Policy()))
    baseline = psutil.Process().memory_info().rss
    start, cpu = time.perf_counter(), time.process_time()
    outcome = ingest_source(
        source,
        file,
        Policy(),
        spec,
        work / "ingest" / "bench.parquet",
        Ledger(work / "ledger.duckdb"),
        "bench",
        screening,
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "records": outcome.kept,
        "read": outcome.read,
        "seconds": seconds,
        "cpu": cpu,
        "baseline": baseline,
    }


def _ledger_frame(rows: int):
    import hashlib

    import polars as pl

    ids = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(rows)]
    return pl.DataFrame(
        {
            "record_id": ids,
            "source_id": ["bench"] * rows,
            "source_key": [f"bench.jsonl:{i + 1}" for i in range(rows)],
            "kind": ["text"] * rows,
            "size_bytes": [500 + i % 400 for i in range(rows)],
        },
        schema={
            "record_id": pl.String,
            "source_id": pl.String,
            "source_key": pl.String,
            "kind": pl.String,
            "size_bytes": pl.Int64,
        },
    )


def child_ledger(work: Path) -> dict:
    from resources.core.ledger import Ledger

    frame = _ledger_frame(LEDGER_ROWS)
    ledger = Ledger(work / "ledger.duckdb")
    ledger.query("SELECT 1")  # create the file and schema outside the timing
    start, cpu = time.perf_counter(), time.process_time()
    ledger.append("records", frame, run_id="bench")
    append, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    verified = ledger.verify()
    verify = time.perf_counter() - start
    return {
        "rows": frame.height,
        "seconds": append,
        "cpu": cpu,
        "verify": verify,
        "ok": verified.ok,
    }


def child_naive(work: Path) -> dict:
    """The baseline: the same rows, one parameterized INSERT each, and no hash chain at all.

    Once with autocommit (each row its own transaction, as a per-record writer would do) and
    once inside a single transaction, the kindest form of row-by-row.
    """
    import duckdb

    from resources.core.ledger_tables import TABLES

    result = {}
    for name, rows, one_transaction in (
        ("autocommit", NAIVE_AUTOCOMMIT_ROWS, False),
        ("one_transaction", NAIVE_ROWS, True),
    ):
        con = duckdb.connect(str(work / f"naive-{name}.duckdb"))
        con.execute(f"CREATE TABLE records ({TABLES['records']})")
        values = _ledger_frame(rows).rows()
        start = time.perf_counter()
        if one_transaction:
            con.begin()
        for row in values:
            con.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, 'bench')", list(row))
        if one_transaction:
            con.commit()
        result[name] = {"rows": rows, "seconds": time.perf_counter() - start}
        con.close()
    return result


CHILDREN = {"ingest": child_ingest, "ledger": child_ledger, "naive": child_naive}


def run_child(kind: str, work: Path, file: Path | None = None) -> dict:
    """Run one job in a fresh interpreter; its result plus its own peak RSS in bytes."""
    work.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, __file__, "--child", kind, "--work", str(work)]
    if file is not None:
        args += ["--file", str(file)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child {kind} failed with {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = usage.ru_maxrss * 1024  # Linux reports KiB
    return result


# -- the report ------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def bench_ingest(tmp: Path, sizes: list[int], big_gb: float) -> None:
    cases: list[tuple[str, Path, int]] = []
    for n in sizes:
        path = tmp / f"synthetic-{n}.jsonl"
        cases.append((f"{n:,} records", path, write_jsonl(path, records=n)))
    if big_gb > 0:
        path = tmp / "synthetic-big.jsonl"
        start = time.perf_counter()
        n = write_jsonl(path, target_bytes=int(big_gb * 1e9))
        gen = time.perf_counter() - start
        label = f"{path.stat().st_size / 1e9:.2f} GB file"
        print(f"(generated {label}, {n:,} records, in {gen:.0f} s)", flush=True)
        cases.append((label, path, n))

    print(
        f"{'case':<18}{'file':>11}{'records':>12}{'seconds':>9}{'CPU s':>8}{'records/s':>12}"
        f"{'MB/s':>8}"
        f"{'peak RSS':>12}{'after import':>14}{'ingest growth':>15}"
    )
    peaks = []
    for i, (label, path, n) in enumerate(cases):
        result = run_child("ingest", tmp / f"work-{i}", path)
        assert result["records"] == n, (result, n)
        size = path.stat().st_size
        rate = result["records"] / result["seconds"]
        peaks.append((label, result["peak_rss"]))
        print(
            f"{label:<18}{size / 1e6:>8,.0f} MB{result['records']:>12,}{result['seconds']:>9.1f}"
            f"{result['cpu']:>8.1f}{rate:>12,.0f}{size / 1e6 / result['seconds']:>8.1f}"
            f"{mib(result['peak_rss']):>12}"
            f"{mib(result['baseline']):>14}{mib(result['peak_rss'] - result['baseline']):>15}",
            flush=True,
        )
        path.unlink()
        shutil.rmtree(tmp / f"work-{i}")
    if len(peaks) > 1:
        (small, small_rss), (large, large_rss) = peaks[0], peaks[-1]
        print(f"peak RSS ratio, {large} vs {small}: {large_rss / small_rss:.2f}x")


def bench_ledger(tmp: Path) -> None:
    bulk = run_child("ledger", tmp / "ledger")
    naive = run_child("naive", tmp / "naive")
    print(
        f"Ledger.append of a {bulk['rows']:,}-row frame (Arrow, hash chain): "
        f"{bulk['seconds']:.2f} s wall, {bulk['cpu']:.2f} s CPU (all threads) "
        f"({bulk['rows'] / bulk['seconds']:,.0f} rows/s), "
        f"peak RSS {mib(bulk['peak_rss'])}; target < 10 s: "
        f"{'met' if bulk['seconds'] < 10 else 'MISSED'}"
    )
    print(
        f"Ledger.verify over those {bulk['rows']:,} rows: {bulk['verify']:.2f} s, "
        f"{'intact' if bulk['ok'] else 'BROKEN'}"
    )
    for name, label in (("autocommit", "autocommit"), ("one_transaction", "one transaction")):
        base = naive[name]
        projected = base["seconds"] * LEDGER_ROWS / base["rows"]
        print(
            f"baseline, row-by-row DuckDB INSERT ({label}): {base['rows']:,} rows in "
            f"{base['seconds']:.2f} s ({base['rows'] / base['seconds']:,.0f} rows/s); "
            f"{LEDGER_ROWS:,} rows extrapolated: {projected:,.0f} s; "
            f"bulk append is {projected / bulk['seconds']:,.0f}x faster"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="record counts, comma-separated")
    parser.add_argument("--big-gb", type=float, default=2.0, help="size of the big file (0: skip)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        extra = (args.file,) if args.child == "ingest" else ()
        print(json.dumps(CHILDREN[args.child](*extra, args.work)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="assay-bench-", dir="/tmp"))
    try:
        bench_ingest(tmp, sizes, args.big_gb)
        bench_ledger(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
