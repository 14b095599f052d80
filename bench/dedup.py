"""Near-duplicate text dedup: quality vs exact Jaccard, throughput, memory; DataTrove beside it.

The corpus: random documents of 60-140 words over a 50,000-word vocabulary, and a quarter as
many planted copies, each of a distinct original with one contiguous block of words replaced
so that the word-5-gram Jaccard lands on a target drawn uniformly from [0.5, 1.0]. The true
Jaccard of every planted pair is then measured exactly on the shingle sets; that is the
ground truth. Words are lowercase letters only, so DataTrove's text simplification and
tokenizer see the same tokens as assay's normalization.

Scoring, the same for both systems: a removed document is a true positive if it belongs to a
planted pair with true Jaccard >= threshold whose other member was kept; every other removal
is a false positive; a positive pair with no member removed is a false negative.

Each size runs in its own subprocess so the peak RSS printed is that run's alone (corpus
included). DataTrove (a bench-only dependency: pip install datatrove xxhash) runs its four
MinHash stages (signatures, buckets, clusters, filter) with its defaults (5-grams, 14 bands
of 8, its English word tokenizer) in one process, offline.

    python bench/dedup.py                       # 10k, 100k, 1M; DataTrove at 100k
    python bench/dedup.py --sizes 10000 --datatrove-size 10000
"""

import argparse
import hashlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resources.core.records import RECORD_SCHEMA
from resources.dedup.config import DedupConfig, MinHashConfig
from resources.dedup.engine import deduplicate
from resources.dedup.minhash import exact_jaccard, shingle_hashes
from resources.dedup.survivors import survivor_rank

NGRAM = 5
DUP_SHARE = 0.2
BINS = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_corpus(n: int, seed: int = 0) -> tuple[pl.Series, np.ndarray]:
    """n texts, and the planted pairs as rows (doc a, doc b, true Jaccard).

    Built a chunk of documents at a time into an Arrow-backed Series, so the corpus costs
    its text bytes and not a Python string per document.
    """
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(50_000)])
    n_dup = int(n * DUP_SHARE)
    n_orig = n - n_dup
    lengths = rng.integers(60, 141, n_orig)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    words = rng.integers(0, vocab.size, int(starts[-1]), dtype=np.int32)
    originals = rng.choice(n_orig, n_dup, replace=False)
    # One contiguous block of k words replaced: k + n - 1 of the m shingles change, so
    # J = (m - k - n + 1) / (m + k + n - 1); solve for k given the target J.
    target = rng.uniform(0.5, 1.0, n_dup)
    size = lengths[originals]
    m = size - NGRAM + 1
    k = np.round((m * (1 - target) - (NGRAM - 1) * (1 + target)) / (1 + target)).astype(int)
    k = np.clip(k, 0, size - 2 * (NGRAM - 1))
    at = rng.integers(NGRAM - 1, size - k - (NGRAM - 1) + 1)
    fresh = rng.integers(0, vocab.size, int(k.sum()), dtype=np.int32)
    fresh_at = np.concatenate(([0], np.cumsum(k)))
    order = rng.permutation(n)  # doc i goes to position order[i]
    doc_at = np.argsort(order)

    def text(i: int) -> str:
        if i < n_orig:
            return " ".join(vocab[words[starts[i] : starts[i + 1]]])
        j = i - n_orig
        o = originals[j]
        ids = words[starts[o] : starts[o + 1]].copy()
        ids[at[j] : at[j] + k[j]] = fresh[fresh_at[j] : fresh_at[j + 1]]
        return " ".join(vocab[ids])

    chunks = [
        pl.Series("text", [text(i) for i in doc_at[lo : lo + 50_000]], pl.String())
        for lo in range(0, n, 50_000)
    ]
    texts = pl.concat(chunks)
    del chunks
    a = order[originals]
    b = order[n_orig + np.arange(n_dup)]
    truth = np.empty(n_dup)
    cfg = MinHashConfig(ngram=NGRAM)
    for lo in range(0, n_dup, 20_000):
        hi = min(lo + 20_000, n_dup)
        batch = shingle_hashes(texts.gather(np.concatenate([a[lo:hi], b[lo:hi]])).to_list(), cfg)
        for i in range(hi - lo):
            truth[lo + i] = exact_jaccard(batch.of(i), batch.of(hi - lo + i))
    return texts, np.column_stack([a, b, truth])


def score(removed: np.ndarray, n: int, pairs: np.ndarray, threshold: float) -> dict:
    gone = np.zeros(n, bool)
    gone[removed] = True
    a, b, j = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    positive = j >= threshold
    one_gone = gone[a] ^ gone[b]
    tp = int((positive & one_gone).sum())
    fp = int(gone.sum()) - tp
    fn = int((positive & ~gone[a] & ~gone[b]).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    flagged = gone[a] | gone[b]
    by_bin = {}
    for lo, hi in itertools.pairwise(BINS):
        sel = (j >= lo) & (j < hi)
        by_bin[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = float(flagged[sel].mean()) if sel.any() else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "removed": int(gone.sum()),
        "positives": int(positive.sum()),
        "removed_by_true_jaccard": by_bin,
    }


def run_assay(n: int, threshold: float, seed: int) -> dict:
    texts, pairs = make_corpus(n, seed)
    ids = pl.Series([hashlib.sha256(t.encode()).hexdigest() for t in texts], dtype=pl.String)
    records = pl.DataFrame(
        {
            "record_id": ids,
            "source_id": pl.repeat("bench", n, eager=True),
            "source_key": pl.int_range(n, eager=True).cast(pl.String),
            "kind": pl.repeat("text", n, eager=True),
            "text": texts,
            "image_path": pl.repeat(None, n, dtype=pl.String, eager=True),
        },
        schema=RECORD_SCHEMA,
    )
    del texts, ids
    sources = pl.DataFrame(
        {
            "source_id": ["bench"],
            "license": ["CC0-1.0"],
            "consent": ["opt_in"],
            "retrieved_at": [None],
            "priority": [0],
        }
    )
    rss_before = peak_rss_mb()
    config = DedupConfig(ngram=NGRAM, threshold=threshold)
    t0 = time.perf_counter()
    rank = survivor_rank(records, sources, ["CC0-1.0"], ["opt_in"])
    result = deduplicate(records, rank, None, config)
    seconds = time.perf_counter() - t0
    removed = result.drops["source_key"].cast(pl.Int64).to_numpy()
    return {
        "system": "assay",
        "docs": n,
        "seconds": seconds,
        "docs_per_s": n / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_dedup_mb": rss_before,
        "bands": result.bands,
        "rows": result.rows,
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        **score(removed, n, pairs, threshold),
    }


def run_datatrove(n: int, threshold: float, seed: int, split: bool = False) -> dict:
    """DataTrove's four MinHash stages; split=True swaps its spaCy word tokenizer for
    str.split (the same tokens on this corpus, and DataTrove at its fastest)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.logging import logger
    from datatrove.utils.word_tokenizers import WordTokenizer

    class SplitTokenizer(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    logger.remove()
    language = SplitTokenizer() if split else "en"
    texts, pairs = make_corpus(n, seed)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts.to_list())]
    del texts
    config = MinhashConfig(n_grams=NGRAM)
    stages = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        MinhashDedupSignature(output_folder=f"{tmp}/sigs", config=config, language=language).run(
            docs, 0, 1
        )
        t1 = time.perf_counter()
        for bucket in range(config.num_buckets):
            MinhashDedupBuckets(
                input_folder=f"{tmp}/sigs", output_folder=f"{tmp}/buckets", config=config
            ).run(None, bucket, config.num_buckets)
        t2 = time.perf_counter()
        MinhashDedupCluster(
            input_folder=f"{tmp}/buckets", output_folder=f"{tmp}/remove", config=config
        ).run(None, 0, 1)
        t3 = time.perf_counter()
        kept = [d.id for d in MinhashDedupFilter(input_folder=f"{tmp}/remove").run(docs, 0, 1)]
        t4 = time.perf_counter()
    stages = {"signatures": t1 - t0, "buckets": t2 - t1, "clusters": t3 - t2, "filter": t4 - t3}
    kept_ids = np.array([int(k) for k in kept])
    removed = np.setdiff1d(np.arange(n), kept_ids)
    seconds = t4 - t0
    return {
        "system": "datatrove-split" if split else "datatrove",
        "docs": n,
        "seconds": seconds,
        "docs_per_s": n / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "stages_s": stages,
        "bands": config.num_buckets,
        "rows": config.hashes_per_bucket,
        **score(removed, n, pairs, threshold),
    }


WORKERS = {
    "assay": run_assay,
    "datatrove": run_datatrove,
    "datatrove-split": lambda n, t, s: run_datatrove(n, t, s, split=True),
}


def in_subprocess(system: str, n: int, threshold: float, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", system, "--n", str(n)]
    cmd += ["--threshold", str(threshold), "--seed", str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--datatrove-size", type=int, default=100_000)
    parser.add_argument("--no-datatrove", action="store_true")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=list(WORKERS))
    parser.add_argument(
        "--datatrove-default-tokenizer",
        action="store_true",
        help="also run DataTrove with its default spaCy tokenizer (several times slower)",
    )
    parser.add_argument("--n", type=int)
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.n, args.threshold, args.seed)))
        return

    results = []
    print(f"assay near-dup dedup, threshold J >= {args.threshold}, word {NGRAM}-grams")
    print(
        f"{'docs':>9} {'seconds':>8} {'docs/s':>9} {'peak RSS MB':>12} "
        f"{'RSS before MB':>14} {'precision':>9} {'recall':>7} {'F1':>6}  bands x rows"
    )
    for n in args.sizes:
        r = in_subprocess("assay", n, args.threshold, args.seed)
        results.append(r)
        print(
            f"{n:>9} {r['seconds']:>8.2f} {r['docs_per_s']:>9.0f} {r['peak_rss_mb']:>12.0f} "
            f"{r['rss_before_dedup_mb']:>14.0f} "
            f"{r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>6.4f}  "
            f"{r['bands']} x {r['rows']}",
            flush=True,
        )

    if not args.no_datatrove:
        n = args.datatrove_size
        ours = next((r for r in results if r["docs"] == n), None)
        if ours is None:
            ours = in_subprocess("assay", n, args.threshold, args.seed)
            results.append(ours)
        others = [in_subprocess("datatrove-split", n, args.threshold, args.seed)]
        if args.datatrove_default_tokenizer:
            others.append(in_subprocess("datatrove", n, args.threshold, args.seed))
        results += others
        print(f"\nSame {n}-doc corpus, side by side (single process each)")
        print(
            f"{'system':>16} {'seconds':>8} {'docs/s':>9} {'peak RSS MB':>12} "
            f"{'precision':>9} {'recall':>7} {'F1':>6}"
        )
        for r in (ours, *others):
            print(
                f"{r['system']:>16} {r['seconds']:>8.2f} {r['docs_per_s']:>9.0f} "
                f"{r['peak_rss_mb']:>12.0f} {r['precision']:>9.4f} {r['recall']:>7.4f} "
                f"{r['f1']:>6.4f}"
            )
        for r in others:
            print(
                f"throughput ratio assay / {r['system']}: "
                f"{ours['docs_per_s'] / r['docs_per_s']:.2f}x; "
                f"F1 assay {ours['f1']:.4f} vs {r['system']} {r['f1']:.4f}; "
                f"{r['system']} stage seconds: "
                + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items())
            )
        print("\nshare of planted pairs flagged, by true Jaccard")
        print(f"{'true J':>10} {'assay':>7} " + " ".join(f"{r['system']:>16}" for r in others))
        for key, value in ours["removed_by_true_jaccard"].items():
            theirs = " ".join(f"{r['removed_by_true_jaccard'][key]:>16.3f}" for r in others)
            print(f"{key:>10} {value:>7.3f} {theirs}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
