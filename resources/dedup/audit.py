"""An independent look for duplicates that dedup left in: a sample of kept records against
every kept record, by brute force rather than by the LSH bands dedup itself relied on."""

import numpy as np
import polars as pl

from resources.core.hamming import hamming
from resources.core.records import IMAGE, TEXT
from resources.dedup.config import DedupConfig
from resources.dedup.engine import binary_to_matrix, verify_exact

VIOLATION_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "other_record_id": pl.String(),
    "kind": pl.String(),
    "similarity": pl.Float64(),
}

# Pairs whose estimate is this far below the threshold cannot plausibly reach it (four
# standard deviations at 128 permutations); the rest are settled by exact Jaccard.
_MARGIN = 0.15
_BLOCK_CELLS = 1 << 24


def kept_duplicates(
    kept: pl.DataFrame, config: DedupConfig, sample_size: int, seed: int = 0
) -> pl.DataFrame:
    """Pairs (sampled kept record, other kept record) at or above the dedup threshold.

    kept has ACCEPTED_SCHEMA's columns plus text. An empty result is what dedup promises.
    """
    rng = np.random.default_rng(seed)
    frames = [
        _text_violations(kept.filter(pl.col("kind") == TEXT), config, sample_size, rng),
        _image_violations(kept.filter(pl.col("kind") == IMAGE), config, sample_size, rng),
    ]
    return pl.concat(frames, how="vertical")


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(size, n), replace=False)) if n else np.empty(0, int)


def _text_violations(
    kept: pl.DataFrame, config: DedupConfig, sample_size: int, rng: np.random.Generator
) -> pl.DataFrame:
    if kept.height < 2:
        return pl.DataFrame(schema=VIOLATION_SCHEMA)
    sig = binary_to_matrix(kept["signature"], config.num_perm)
    sample = _sample(kept.height, sample_size, rng)
    lefts, rights = [], []
    step = max(1, _BLOCK_CELLS // (kept.height * sig.shape[1]))
    for s in range(0, sample.size, step):
        rows = sample[s : s + step]
        est = (sig[rows, None, :] == sig[None, :, :]).mean(axis=2)
        est[np.arange(rows.size), rows] = 0.0
        floor = config.threshold - (_MARGIN if config.verify == "exact" else 0.0)
        i, j = np.nonzero(est >= floor)
        lefts.append(rows[i])
        rights.append(j)
    pairs = np.column_stack([np.concatenate(lefts), np.concatenate(rights)]).astype(np.int64)
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    if config.verify == "exact":
        pairs, sim = verify_exact(kept["text"], np.arange(kept.height), pairs, config)
    else:
        sim = (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1) if pairs.size else np.empty(0)
    return _frame(kept, pairs, sim, TEXT)


def _image_violations(
    kept: pl.DataFrame, config: DedupConfig, sample_size: int, rng: np.random.Generator
) -> pl.DataFrame:
    if kept.height < 2:
        return pl.DataFrame(schema=VIOLATION_SCHEMA)
    phash = kept["phash"].to_numpy().astype(np.uint64)
    sample = _sample(kept.height, sample_size, rng)
    found = [np.empty((0, 2), np.int64)]
    step = max(1, _BLOCK_CELLS // kept.height)
    for s in range(0, sample.size, step):
        rows = sample[s : s + step]
        dist = hamming(phash[rows, None], phash[None, :])
        dist[np.arange(rows.size), rows] = 65
        i, j = np.nonzero(dist <= config.image_max_distance)
        found.append(np.column_stack([rows[i], j]))
    pairs = np.unique(np.sort(np.concatenate(found), axis=1), axis=0)
    sim = 1.0 - hamming(phash[pairs[:, 0]], phash[pairs[:, 1]]) / 64.0 if pairs.size else []
    return _frame(kept, pairs, np.asarray(sim, np.float64), IMAGE)


def _frame(kept: pl.DataFrame, pairs: np.ndarray, sim: np.ndarray, kind: str) -> pl.DataFrame:
    ids = kept["record_id"]
    if pairs.size == 0:
        return pl.DataFrame(schema=VIOLATION_SCHEMA)
    return pl.DataFrame(
        {
            "record_id": ids.gather(pairs[:, 0]),
            "other_record_id": ids.gather(pairs[:, 1]),
            "kind": [kind] * pairs.shape[0],
            "similarity": sim,
        },
        schema=VIOLATION_SCHEMA,
    )
