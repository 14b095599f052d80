"""The whole pipeline, ingest through release, as `assay run` runs it, at growing corpus sizes.

    nice -n 10 .venv/bin/python bench/pipeline.py                       # 10k and 100k docs
    nice -n 10 .venv/bin/python bench/pipeline.py --sizes 1000000       # 1M (slow)
    nice -n 10 .venv/bin/python bench/pipeline.py --sizes 2000 --keep /tmp/p   # keep the project
    nice -n 10 .venv/bin/python bench/pipeline.py --select ingest,dedup,scrub  # the data stages

For each size a scratch project is built: the repo's params.yaml with its sources replaced by
four JSONL sources of synthetic ~1 KB documents (random words of a 20,000-word vocabulary, so
unrelated documents share no word 5-gram), with planted exact copies, near copies (two words
replaced: word-5-gram Jaccard about 0.87 to the original, above dedup's 0.8), PII sentences
(the sample corpus's templates: names, emails, phones, cards, SSNs, IBANs, addresses) and
listed items (a hash list names each by sha256, md5 or normalized-text sha256). Then
`assay --params P run` runs as one subprocess (niced), exactly as a user runs it.

Per stage, wall time is the Dagster step's own start-to-end (the instance's run step stats,
ingest summed over its per-source runs), so process start-up is outside it; the whole process's
wall time is printed too. Peak RSS is the sum of the RSS of the run process and all its children
(PII workers), sampled every 0.2 s, the highest sample inside each step; peak PSS the same
with each shared page divided among the processes sharing it (what the tree really holds).
The cost slope of a stage between two sizes is (time ratio) / (size ratio): 1.0 is linear, 2.0
quadratic; "vs linear" is measured time over the smallest size's time scaled linearly. What the
run found is checked against what was planted, from the ledger: listed items dropped at the
door, exact and near copies dropped by dedup, records with PII.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.sample import pii_sentence  # noqa: E402  (the sample corpus's PII templates)
from resources.core.normalize import normalized_sha256  # noqa: E402

ASSAY = str(Path(sys.executable).with_name("assay"))
STAGES = ("ingest", "dedup", "scrub", "train", "release")
TRAIN_STEPS = 500
"""train.max_steps of every size: DP-SGD trains a fixed budget of steps, as a large corpus is
trained by budget rather than by epochs (at 10k the epochs take fewer: 342)."""
SOURCES = 4
VOCABULARY = 20_000
WORDS = 140  # about 1 KB with the vocabulary's 3-9 letter words
EXACT_SHARE = 0.05
NEAR_SHARE = 0.05
PII_SHARE = 0.10
LISTED_SHARE = 0.001
NEAR_EDITS = 2
HASH_TYPES = ("sha256", "md5", "sha256_text")
SAMPLE_SECONDS = 0.2


@dataclass
class Corpus:
    """Synthetic documents and what was planted in them (indices into ``texts``)."""

    texts: list[str]
    exact: dict[int, int] = field(default_factory=dict)  # copy -> original
    near: dict[int, int] = field(default_factory=dict)  # near copy -> original
    pii: set[int] = field(default_factory=set)
    listed: set[int] = field(default_factory=set)
    hash_rows: list[tuple[str, str, str]] = field(default_factory=list)  # hash, type, label


def vocabulary(rng: np.random.Generator, size: int = VOCABULARY) -> np.ndarray:
    """``size`` distinct lowercase words of 3-9 letters (no digits: a digit means PII)."""
    words: set[str] = set()
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    while len(words) < size:
        lengths = rng.integers(3, 10, size)
        codes = letters[rng.integers(0, 26, (size, 9))]
        words.update(bytes(row[:n]).decode() for row, n in zip(codes, lengths, strict=True))
    return np.array(sorted(words)[:size])


def synthetic_corpus(n: int, seed: int = 0) -> Corpus:
    """``n`` documents: unique ones, exact and near copies of some, PII in others, some listed.

    The planted groups are disjoint: a copied original has no PII and is not listed, so every
    copy is a duplicate of exactly one clean original and every listed item is unique."""
    rng = np.random.default_rng(seed)
    text_rng = random.Random(seed)
    vocab = vocabulary(rng)
    n_exact, n_near = int(n * EXACT_SHARE), int(n * NEAR_SHARE)
    n_unique = n - n_exact - n_near
    words = rng.integers(0, len(vocab), (n_unique, WORDS))
    originals = rng.permutation(n_unique)
    copied = originals[: n_exact + n_near]
    n_pii, n_listed = int(n * PII_SHARE), max(1, int(n * LISTED_SHARE))
    pii = set(originals[len(copied) : len(copied) + n_pii].tolist())
    listed = set(originals[len(copied) + n_pii : len(copied) + n_pii + n_listed].tolist())
    texts = [" ".join(vocab[row]) for row in words]
    for i in sorted(pii):
        texts[i] += " " + pii_sentence(text_rng)
    corpus = Corpus(texts, pii=pii, listed=listed)
    for k, original in enumerate(copied.tolist()):
        if k < n_exact:
            corpus.exact[len(texts)] = original
            texts.append(texts[original])
        else:
            corpus.near[len(texts)] = original
            texts.append(_near_copy(rng, words[original], vocab))
    for k, i in enumerate(sorted(listed)):
        kind = HASH_TYPES[k % len(HASH_TYPES)]
        corpus.hash_rows.append((_digest(texts[i], kind), kind, f"bench listed {k}"))
    return corpus


def _near_copy(rng: np.random.Generator, row: np.ndarray, vocab: np.ndarray) -> str:
    """The original's words with NEAR_EDITS of them, far apart, replaced by other words."""
    edited = row.copy()
    for position in rng.choice(len(row) // 10, NEAR_EDITS, replace=False) * 10:
        edited[position] = (row[position] + 1 + rng.integers(0, len(vocab) - 1)) % len(vocab)
    return " ".join(vocab[edited])


def _digest(text: str, kind: str) -> str:
    if kind == "sha256_text":
        return normalized_sha256(text)
    return hashlib.new(kind, text.encode()).hexdigest()


def source_of(index: int) -> str:
    return f"bench{index % SOURCES}"


def write_project(
    root: Path, corpus: Corpus, engine: str = "local", train_steps: int | None = TRAIN_STEPS
) -> Path:
    """params.yaml (the repo's, with these sources, engine and training's step budget), the
    JSONL sources, the hash list, a key."""
    from resources.release.keys import init_key

    raw, lists = root / "data" / "raw", root / "data" / "hashlists"
    raw.mkdir(parents=True)
    lists.mkdir(parents=True)
    order = np.random.default_rng(len(corpus.texts)).permutation(len(corpus.texts))
    files = {s: (raw / f"{s}.jsonl").open("w", encoding="utf-8") for s in _source_ids()}
    for position, i in enumerate(order.tolist()):
        line = json.dumps({"id": f"doc-{i:08d}", "text": corpus.texts[i]})
        files[source_of(position)].write(line + "\n")
    for f in files.values():
        f.close()
    with (lists / "bench.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["hash", "type", "label"])
        writer.writerows(corpus.hash_rows)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sources"] = [_source(s) for s in _source_ids()]
    params["engine"] = {**params.get("engine", {}), "kind": engine}
    params["train"] = {**params.get("train", {}), "max_steps": train_steps}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    init_key(root / ".assay" / "keys" / "release.pem")
    return path


def _source_ids() -> list[str]:
    return [f"bench{k}" for k in range(SOURCES)]


def _source(source_id: str) -> dict:
    return {
        "id": source_id,
        "path": f"data/raw/{source_id}.jsonl",
        "format": "jsonl",
        "text_field": "text",
        "id_field": "id",
        "license": "CC-BY-4.0",
        "consent": "opt_in",
        "uri": f"https://bench.example.org/{source_id}",
        "retrieved_at": "2026-01-01T00:00:00Z",
        "owner": "bench@example.org",
    }


class TreeRss:
    """Samples the summed RSS and PSS of a process and its children until it exits.

    RSS counts a page shared between processes (a forked worker's copy of its parent's model)
    in each of them; PSS divides it among them, so the summed PSS is what the tree uses."""

    def __init__(self, pid: int) -> None:
        self.samples: list[tuple[float, int, int]] = []  # (time, summed RSS, summed PSS)
        self._process = psutil.Process(pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while self._process.is_running() and self._process.status() != psutil.STATUS_ZOMBIE:
            rss = pss = 0
            try:
                for p in [self._process, *self._process.children(recursive=True)]:
                    memory = p.memory_full_info()
                    rss, pss = rss + memory.rss, pss + memory.pss
            except psutil.Error:
                continue  # a child ended between listing and reading
            self.samples.append((time.time(), rss, pss))
            time.sleep(SAMPLE_SECONDS)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> tuple[int, int]:
        """The highest summed RSS and the highest summed PSS sampled between start and end."""
        inside = [(rss, pss) for t, rss, pss in self.samples if start <= t <= end]
        return max((r for r, _ in inside), default=0), max((p for _, p in inside), default=0)

    def join(self) -> None:
        self._thread.join()


@dataclass
class Measured:
    docs: int
    engine: str
    wall: float
    returncode: int
    peak: tuple[int, int]  # summed RSS, summed PSS (bytes)
    stages: dict[str, tuple[float, tuple[int, int]]]  # stage -> (seconds, peaks)
    found: dict[str, int]
    planted: dict[str, int]
    gate: str  # the release gate's verdict, with its violations when it blocked
    training: str  # DP-SGD steps and seconds per step, from training_runs
    ledger_rows: int
    ledger_bytes: int


def run_size(
    n: int, workdir: Path, seed: int, select: str | None = None, engine: str = "local"
) -> Measured:
    corpus = synthetic_corpus(n, seed)
    planted = {
        "listed": len(corpus.listed),
        "exact copies": len(corpus.exact),
        "near copies": len(corpus.near),
        "docs with PII": len(corpus.pii),
    }
    params = write_project(workdir, corpus, engine)
    del corpus  # the run, not the generator, is measured; free its memory first
    home = workdir / ".dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}
    started = time.time()
    log = (workdir / "run.log").open("w")
    process = subprocess.Popen(
        [ASSAY, "--params", str(params), "run", *(["--select", select] if select else [])],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    rss = TreeRss(process.pid)
    returncode = process.wait()
    rss.join()
    wall = time.time() - started
    stages = {s: (t, rss.peak(a, b)) for s, (t, a, b) in _step_times(home).items()}
    found, gate, training = _found(params)
    rows, size = _ledger_size(params)
    return Measured(
        n, engine, wall, returncode, rss.peak(), stages, found, planted, gate, training, rows, size
    )


def _ledger_size(params: Path) -> tuple[int, int]:
    """Rows in every ledger table, and the ledger file's bytes (after the run's checkpoint)."""
    from pipelines.params import load_params
    from resources.core.ledger import Ledger

    path = load_params(params).ledger_path
    with Ledger(path).reader() as reader:
        rows = sum(
            int(reader.query(f'SELECT count(*) AS n FROM "{t}"')["n"][0]) for t in reader.tables()
        )
    return rows, Path(path).stat().st_size


def _step_times(home: Path) -> dict[str, tuple[float, float, float]]:
    """stage -> (seconds summed over its steps, first start, last end) from the run stats."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    times: dict[str, tuple[float, float, float]] = {}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            for step in instance.get_run_step_stats(run.run_id):
                if step.start_time is None or step.end_time is None:
                    continue
                stage = next((s for s in STAGES if step.step_key.startswith(s)), step.step_key)
                seconds, first, last = times.get(stage, (0.0, float("inf"), 0.0))
                times[stage] = (
                    seconds + step.end_time - step.start_time,
                    min(first, step.start_time),
                    max(last, step.end_time),
                )
    return times


def _found(params: Path) -> tuple[dict[str, int], str, str]:
    """What the run dropped and detected, and the gate's verdict, from its ledger."""
    from pipelines.params import load_params
    from resources.core.ledger import Ledger

    ledger = Ledger(load_params(params).ledger_path)
    drops = ledger.query("SELECT reason, count(*) AS n FROM drops GROUP BY reason")
    by_reason = dict(drops.rows())
    pii = ledger.query("SELECT count(DISTINCT record_id) AS n FROM pii_record_counts")
    verdicts = ledger.query("SELECT status, violations FROM releases").rows()
    gate = " ".join(f"{status} {violations or ''}".strip() for status, violations in verdicts)
    found = {
        "listed": by_reason.get("harmful_hash_match", 0),
        "exact copies": by_reason.get("duplicate_exact", 0),
        "near copies": by_reason.get("duplicate_near", 0),
        "docs with PII": int(pii["n"][0]),
    }
    runs = ledger.query("SELECT steps, train_seconds FROM training_runs").rows()
    training = " ".join(f"{steps} steps, {seconds / steps:.3f} s/step" for steps, seconds in runs)
    return found, gate or "no verdict", training or "no training run"


def print_report(results: list[Measured]) -> None:
    columns = ("docs", "engine", "stage", "seconds", "docs/s")
    widths = (9, 6, 8, 9, 9)
    header = " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    print(header, "peak RSS MB  peak PSS MB")
    for m in results:
        row = f"{m.docs:>9} {m.engine:>6}"
        for stage in (*STAGES, *sorted(set(m.stages) - set(STAGES))):
            if stage in m.stages:
                seconds, peak = m.stages[stage]
                rate = m.docs / seconds if seconds else float("nan")
                print(f"{row} {stage:>8} {seconds:>9.1f} {rate:>9.0f} {_megabytes(peak)}")
        steps = sum(t for t, _ in m.stages.values())
        print(f"{row} {'steps':>8} {steps:>9.1f} {m.docs / steps:>9.0f}")
        print(
            f"{row} {'process':>8} {m.wall:>9.1f} {m.docs / m.wall:>9.0f} "
            f"{_megabytes(m.peak)}   exit {m.returncode}"
        )
    print()
    print("planted/found (from the ledger)")
    for m in results:
        cells = ", ".join(f"{k} {m.planted[k]}/{m.found[k]}" for k in m.planted)
        print(f"{m.docs:>9} {m.engine:>6}  {cells}; DP-SGD: {m.training}; gate: {m.gate}")
    print()
    print("ledger after the run")
    for m in results:
        print(
            f"{m.docs:>9} {m.engine:>6}  {m.ledger_rows} rows"
            f" ({m.ledger_rows / m.docs:.1f} per doc), {m.ledger_bytes / 2**20:.1f} MB"
            f" ({m.ledger_bytes / m.docs:.0f} B per doc)"
        )
    engines = sorted({m.engine for m in results})
    for engine in engines:
        of_engine = [m for m in results if m.engine == engine]
        if len(of_engine) > 1:
            print()
            _print_slopes(of_engine)
    if len(engines) > 1:
        print()
        _print_engines(results, engines)


def _megabytes(peak: tuple[int, int]) -> str:
    rss, pss = peak
    return f"{rss / 2**20:>12.0f} {pss / 2**20:>12.0f}"


def _print_engines(results: list[Measured], engines: list[str]) -> None:
    """docs/s of each stage on each engine, side by side, and the ratio to the first."""
    print(f"docs/s by engine (ratio to {engines[0]})")
    for docs in sorted({m.docs for m in results}):
        runs = {m.engine: m for m in results if m.docs == docs}
        if len(runs) < 2:
            continue
        for stage in (*STAGES, "steps"):
            rates = {e: docs / t for e, m in runs.items() if (t := _seconds(m, stage))}
            if engines[0] in rates and len(rates) > 1:
                cells = [f"{e} {r:,.0f} (x{r / rates[engines[0]]:.2f})" for e, r in rates.items()]
                print(f"{docs:>9} {stage:>8}  " + ", ".join(cells))


def _print_slopes(results: list[Measured]) -> None:
    print(
        f"cost slope, engine {results[0].engine} (time ratio / size ratio; 1.0 = linear)"
        " and time vs linear from smallest"
    )
    base = results[0]
    for prev, m in itertools.pairwise(results):
        cells = []
        for stage in (*STAGES, "steps"):
            t0, t1, tb = (_seconds(r, stage) for r in (prev, m, base))
            if t0 and t1 and tb:
                slope = (t1 / t0) / (m.docs / prev.docs)
                linear = t1 / (tb * m.docs / base.docs)
                cells.append(f"{stage} {slope:.2f} ({linear:.2f}x)")
        print(f"{prev.docs:>9} -> {m.docs:<9} " + ", ".join(cells))


def _seconds(m: Measured, stage: str) -> float:
    if stage == "steps":
        return sum(t for t, _ in m.stages.values())
    return m.stages.get(stage, (0.0, 0))[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated doc counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="build the projects here and keep them")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--select", default=None, help="assets to run (assay run --select), e.g. ingest,dedup,scrub"
    )
    parser.add_argument(
        "--engines", default="local", help="engine.kind values to run each size on, e.g. local,ray"
    )
    args = parser.parse_args(argv)
    if os.nice(0) < 10:
        os.nice(10 - os.nice(0))
    results = []
    runs = [(int(s), e) for s in args.sizes.split(",") for e in args.engines.split(",")]
    for n, engine in runs:
        base = Path(args.keep or tempfile.mkdtemp(prefix="assay-bench-pipeline-"))
        workdir = base / f"docs-{n}-{engine}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        result = run_size(n, workdir, args.seed, args.select, engine)
        results.append(result)
        print(f"{n} docs, {engine}: {result.wall:.1f} s, exit {result.returncode}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(base)
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps([m.__dict__ for m in results], indent=2))
    # A gate that blocks is a result (the release step ran and signed its verdict); a stage that
    # never ran is a failed benchmark.
    wanted = set(args.select.split(",")) if args.select else set(STAGES)
    complete = all(wanted <= set(m.stages) for m in results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
