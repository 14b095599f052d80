"""Deduplicate records, globally across sources, against what earlier runs accepted.

1. Exact: records with the same normalized text (normalized_sha256) or the same decoded
   pixels form one group; the group's best-ranked member represents it.
2. Near: text representatives get MinHash signatures (minhash.py), bands chosen for
   the recall target (choose_bands), candidate pairs from shared band keys (lsh.py),
   verified by Jaccard before anything is removed; image representatives are paired by pHash
   within a Hamming distance (images.py, resources/core/hamming.py).
3. Survivors: in provenance rank order a group is kept unless a verified edge links it to a
   kept group (clusters.py). Records already accepted by an earlier run come first
   and are never removed: they may already be downstream.

Every dropped record names the kept record it duplicates (record_id, source_id, source_key),
the method and the similarity.
"""

import hashlib
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl
import pyarrow as pa

from resources.core.engine import LOCAL, EngineConfig, batch_rows, map_batches
from resources.core.hamming import pairs_within
from resources.core.normalize import normalize_text
from resources.core.reasons import Reason
from resources.core.records import DROP_SCHEMA, IMAGE, RECORD_SCHEMA, TEXT
from resources.dedup.clusters import (
    Survivors,
    cluster_labels,
    select_survivors,
    size_histogram,
)
from resources.dedup.config import DedupConfig, MinHashConfig
from resources.dedup.images import ImageKeys, image_keys
from resources.dedup.lsh import band_keys, candidate_pairs
from resources.dedup.minhash import (
    choose_bands,
    estimated_jaccard,
    exact_jaccard,
    shingle_hashes,
    signatures,
)

ACCEPTED_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "kind": pl.String(),
    "exact_key": pl.String(),
    "signature": pl.Binary(),
    "phash": pl.UInt64(),
}
"""A row of the persisted accepted set: enough to dedup later records against it."""

METHOD_EXACT_TEXT = "sha256_normalized_text"
METHOD_EXACT_PIXELS = "sha256_pixels"
METHOD_MINHASH_EXACT = "minhash_lsh+jaccard"
METHOD_MINHASH_ESTIMATE = "minhash_lsh+estimated_jaccard"
METHOD_PHASH = "phash_hamming"

# In "exact" verification the estimate only prunes: four standard deviations of a 128-slot
# estimate near 0.8 (sqrt(0.8 * 0.2 / 128) = 0.035) below the threshold, so pruning costs
# no true pair in practice and spares the exact Jaccard for most false candidates.
_PRUNE_MARGIN = 0.15


@dataclass
class DedupResult:
    kept: pl.DataFrame
    """records kept from `new`, RECORD_SCHEMA"""
    drops: pl.DataFrame
    """DROP_SCHEMA; evidence JSON holds duplicate_of, method, similarity"""
    accepted: pl.DataFrame
    """ACCEPTED_SCHEMA: the earlier accepted set plus the kept new records"""
    cluster_sizes: dict[int, int]
    """records per duplicate cluster -> number of clusters (new and accepted records)"""
    bands: int
    rows: int
    candidate_pairs: int
    verified_pairs: int

    @property
    def clusters(self) -> int:
        return sum(self.cluster_sizes.values())


def deduplicate(
    new: pl.DataFrame,
    rank: np.ndarray,
    accepted: pl.DataFrame | None,
    config: DedupConfig,
    engine: EngineConfig = LOCAL,
) -> DedupResult:
    """Dedup `new` records (RECORD_SCHEMA, ranked by survivor_rank: lower is better) among
    themselves and against `accepted` (ACCEPTED_SCHEMA plus the records' text, which the
    "exact" verification reads).

    Ties in rank go to the larger content (image pixels, text characters), then source_id,
    then source_key."""
    if accepted is None:
        accepted = pl.DataFrame(schema={**ACCEPTED_SCHEMA, "text": pl.String()})
    exact_keys, new_sig, new_phash, size = _new_keys(new, config, engine)
    pool = _pool(new, exact_keys, accepted)
    n_acc = accepted.height
    protected = np.arange(pool.height) < n_acc
    full_rank = _total_rank(pool, n_acc, np.asarray(rank, np.int64), size)

    group = pool.select(pl.struct("kind", "exact_key").rank("dense") - 1).to_series()
    group = group.to_numpy().astype(np.int64)
    n_groups = int(group.max()) + 1 if group.size else 0
    rep = _representatives(group, full_rank, n_groups)
    kinds = pool["kind"].to_numpy()[rep]
    sig = _pool_signatures(accepted, new_sig, config.num_perm)
    del new_sig
    phash = _group_phashes(accepted, new_phash, rep, kinds)

    near = _near_edges(pool, rep, kinds, sig, phash, config)
    surv = select_survivors(full_rank[rep], near.edges, near.similarity, protected[rep])

    labels = cluster_labels(n_groups, near.edges)
    sizes = np.bincount(group, minlength=n_groups).astype(np.float64)

    kept_mask, drops = _drops(pool, group, rep, surv, near, protected)
    kept_pool = pool.filter(pl.Series(kept_mask))
    kept_groups = group[kept_mask]
    accepted_out = kept_pool.select("record_id", "source_id", "source_key", "kind", "exact_key")
    accepted_out = accepted_out.with_columns(
        pl.when(pl.col("kind") == TEXT).then(matrix_to_binary(sig[kept_mask])).alias("signature"),
        pl.when(pl.col("kind") == IMAGE)
        .then(pl.Series(phash[kept_groups], dtype=pl.UInt64()))
        .alias("phash"),
    ).select(list(ACCEPTED_SCHEMA))
    kept = kept_pool.filter(pl.Series(~protected[kept_mask])).select(list(RECORD_SCHEMA))
    return DedupResult(
        kept=kept,
        drops=drops,
        accepted=accepted_out,
        cluster_sizes=size_histogram(labels, weights=sizes),
        bands=near.bands,
        rows=near.rows,
        candidate_pairs=near.candidates,
        verified_pairs=int(near.edges.shape[0]),
    )


def _new_keys(
    new: pl.DataFrame, config: DedupConfig, engine: EngineConfig
) -> tuple[list[str | None], np.ndarray, np.ndarray, np.ndarray]:
    """Exact key of every new record, MinHash of every text and pHash of every image (both on
    the engine, at most dedup.batch_size rows to a task), and the content size (characters,
    pixels) that breaks survivor ties."""
    kinds = new["kind"].to_numpy()
    exact: list[str | None] = [None] * new.height
    sig = np.zeros((new.height, config.num_perm), np.uint32)
    phash = np.zeros(new.height, np.uint64)
    size = new["text"].str.len_chars().fill_null(0).to_numpy().astype(np.int64)
    text_rows = np.flatnonzero(kinds == TEXT)
    texts = new["text"]
    step = config.batch_size
    row_batches = [text_rows[s : s + step] for s in range(0, text_rows.size, step)]
    keyed = map_batches(
        partial(text_keys, config),
        (texts.gather(rows).to_list() for rows in row_batches),
        engine,
    )
    for rows, (keys, batch_sig) in zip(row_batches, keyed, strict=True):
        for row, key in zip(rows.tolist(), keys, strict=True):
            exact[row] = key
        sig[rows] = batch_sig
    # Records hold image paths, not bytes: a worker reads and decodes its images itself.
    image_rows = np.flatnonzero(kinds == IMAGE)
    paths = new["image_path"]
    # Decoding is the cost: on Ray, spread the images over every CPU even when fewer than
    # dedup.batch_size of them.
    per_task = batch_rows(image_rows.size, engine, most=step)
    image_batches = [image_rows[s : s + per_task] for s in range(0, image_rows.size, per_task)]
    decoded = map_batches(
        _image_batch_keys, (paths.gather(rows).to_list() for rows in image_batches), engine
    )
    for rows, batch_keys in zip(image_batches, decoded, strict=True):
        for row, keys in zip(rows.tolist(), batch_keys, strict=True):
            exact[row], phash[row], size[row] = keys.pixel_sha256, keys.phash, keys.pixels
    return exact, sig, phash, size


def text_keys(config: MinHashConfig, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Exact key (sha256 of the normalized text) and MinHash signature of each text.

    Each text is normalized once, for both. One batch's work, on whichever engine runs it.
    """
    normalized = [normalize_text(t) for t in texts]
    exact = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in normalized]
    batch = shingle_hashes(normalized, config, normalized=True)
    return exact, signatures(batch, config.num_perm, config.seed)


def _image_batch_keys(paths: list[str]) -> list[ImageKeys]:
    """Pixel digest, pHash and pixel count of each image file; one batch's work."""
    return [image_keys(path) for path in paths]


def _total_rank(pool: pl.DataFrame, n_acc: int, rank: np.ndarray, size: np.ndarray) -> np.ndarray:
    """A strict order over pool rows: accepted first, then provenance rank, larger content,
    source_id, source_key."""
    order = pool.select("source_id", "source_key").with_columns(
        pl.Series("rank", np.concatenate([np.full(n_acc, -1, np.int64), rank])),
        pl.Series("size", np.concatenate([np.zeros(n_acc, np.int64), size])),
    )
    ranked = (
        order.with_row_index("_row")
        .sort(["rank", "size", "source_id", "source_key"], descending=[False, True, False, False])
        .with_row_index("_total")
    )
    return ranked.sort("_row")["_total"].to_numpy().astype(np.int64)


def _pool(new: pl.DataFrame, exact: list[str | None], accepted: pl.DataFrame) -> pl.DataFrame:
    """Accepted rows first, then the new records, each with its exact key."""
    fresh = new.select(list(RECORD_SCHEMA)).with_columns(pl.Series("exact_key", exact, pl.String()))
    text = pl.col("text") if "text" in accepted.columns else pl.lit(None, pl.String())
    old = accepted.select(
        *RECORD_SCHEMA.keys() - {"text", "image_path"},
        text.alias("text"),
        pl.lit(None, pl.String()).alias("image_path"),
        "exact_key",
    )
    columns = [*RECORD_SCHEMA, "exact_key"]
    return pl.concat([old.select(columns), fresh.select(columns)], how="vertical_relaxed")


def _representatives(group: np.ndarray, rank: np.ndarray, n_groups: int) -> np.ndarray:
    """The best-ranked row of each exact group."""
    order = np.lexsort((np.arange(group.size), rank, group))
    first = np.ones(order.size, bool)
    first[1:] = group[order][1:] != group[order][:-1]
    rep = np.empty(n_groups, np.int64)
    rep[group[order][first]] = order[first]
    return rep


def matrix_to_binary(matrix: np.ndarray) -> pl.Series:
    """Each row of a uint32 matrix as one binary value (a persisted signature).

    polars reads the fixed-size values in place (views into the matrix's buffer): a cast to
    large_binary first was a second copy of every signature, half a GB at 1M records."""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint32)
    width = matrix.shape[1] * 4 if matrix.ndim == 2 else 0
    arr = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), matrix.shape[0], [None, pa.py_buffer(matrix)]
    )
    return pl.Series("signature", arr)


def binary_to_matrix(values: pl.Series, num_perm: int) -> np.ndarray:
    """Inverse of matrix_to_binary; every value must hold num_perm uint32 values. The matrix
    is a read-only view of the values' exported buffer, not a copy of it."""
    arr = values.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    if arr.null_count:
        raise ValueError("missing signatures")
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
    width = num_perm * 4
    if np.any(np.diff(offsets) != width):
        raise ValueError(f"stored signatures do not hold {num_perm} permutations")
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.uint32).reshape(len(arr), num_perm)


def _pool_signatures(accepted: pl.DataFrame, new_sig: np.ndarray, num_perm: int) -> np.ndarray:
    """MinHash of every pool row (accepted rows, then new); zeros for images."""
    if accepted.height == 0:
        return new_sig
    old = np.zeros((accepted.height, num_perm), np.uint32)
    is_text = (accepted["kind"] == TEXT).to_numpy()
    if is_text.any():
        old[is_text] = binary_to_matrix(accepted["signature"].filter(is_text), num_perm)
    return np.concatenate([old, new_sig])


def _group_phashes(
    accepted: pl.DataFrame, new_phash: np.ndarray, rep: np.ndarray, kinds: np.ndarray
) -> np.ndarray:
    """pHash of each image group's representative (pool rows: accepted, then new)."""
    phash = np.zeros(rep.size, np.uint64)
    image_groups = np.flatnonzero(kinds == IMAGE)
    rows = rep[image_groups]
    old = rows < accepted.height
    if old.any():
        phash[image_groups[old]] = accepted["phash"].gather(rows[old]).to_numpy()
    phash[image_groups[~old]] = new_phash[rows[~old] - accepted.height]
    return phash


@dataclass(frozen=True)
class NearEdges:
    edges: np.ndarray
    """(k x 2) pairs of exact groups"""
    similarity: np.ndarray
    method: np.ndarray
    hamming: np.ndarray
    """image pairs' pHash distance, -1 for text pairs"""
    bands: int
    rows: int
    candidates: int


def _near_edges(
    pool: pl.DataFrame,
    rep: np.ndarray,
    kinds: np.ndarray,
    sig: np.ndarray,
    phash: np.ndarray,
    config: DedupConfig,
) -> NearEdges:
    """Verified near-duplicate edges between exact groups."""
    bands, rows = choose_bands(config.threshold, config.num_perm, config.min_recall)
    edges, sims, methods, dists = [], [], [], []
    candidates = 0

    text_groups = np.flatnonzero(kinds == TEXT)
    if text_groups.size > 1:
        text_rows = rep[text_groups]
        keys = band_keys(sig, bands, rows, items=text_rows)
        pairs = candidate_pairs(keys, memory_limit=config.memory_limit)
        del keys
        candidates += pairs.shape[0]
        pairs, sim = _verify_text(pool["text"], text_rows, sig, pairs, config)
        method = METHOD_MINHASH_EXACT if config.verify == "exact" else METHOD_MINHASH_ESTIMATE
        edges.append(text_groups[pairs].reshape(-1, 2))
        sims.append(sim)
        methods.append(np.full(sim.size, method, dtype=object))
        dists.append(np.full(sim.size, -1, np.int64))

    image_groups = np.flatnonzero(kinds == IMAGE)
    if image_groups.size > 1:
        pairs, dist = pairs_within(phash[image_groups], config.image_max_distance)
        candidates += pairs.shape[0]
        edges.append(image_groups[pairs].reshape(-1, 2))
        sims.append(1.0 - dist / 64.0)
        methods.append(np.full(dist.size, METHOD_PHASH, dtype=object))
        dists.append(dist)

    if not edges:
        empty = np.empty(0)
        return NearEdges(
            np.empty((0, 2), np.int64),
            empty,
            empty.astype(object),
            empty.astype(np.int64),
            bands,
            rows,
            0,
        )
    return NearEdges(
        edges=np.concatenate(edges),
        similarity=np.concatenate(sims),
        method=np.concatenate(methods),
        hamming=np.concatenate(dists),
        bands=bands,
        rows=rows,
        candidates=candidates,
    )


def _verify_text(
    texts: pl.Series,
    rows: np.ndarray,
    sig: np.ndarray,
    pairs: np.ndarray,
    config: DedupConfig,
) -> tuple[np.ndarray, np.ndarray]:
    if pairs.size == 0:
        return pairs, np.empty(0)
    est = estimated_jaccard(sig, rows[pairs[:, 0]], rows[pairs[:, 1]])
    if config.verify == "estimated":
        keep = est >= config.threshold
        return pairs[keep], est[keep]
    pairs = pairs[est >= config.threshold - _PRUNE_MARGIN]
    return verify_exact(texts, rows, pairs, config)


def verify_exact(
    texts: pl.Series, rows: np.ndarray, pairs: np.ndarray, config: DedupConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the pairs whose shingle sets' true Jaccard reaches the threshold.

    pairs index `rows`, which index `texts`.
    """
    if pairs.size == 0:
        return pairs, np.empty(0)
    involved = np.unique(pairs)
    position = np.full(int(involved.max()) + 1, -1, np.int64)
    position[involved] = np.arange(involved.size)
    sets: list[np.ndarray] = []
    for s in range(0, involved.size, config.batch_size):
        chunk = rows[involved[s : s + config.batch_size]]
        batch = shingle_hashes(texts.gather(chunk).to_list(), config)
        sets += [np.unique(batch.of(i)) for i in range(chunk.size)]
    sim = np.array(
        [exact_jaccard(sets[a], sets[b]) for a, b in position[pairs].tolist()],
        dtype=np.float64,
    )
    keep = sim >= config.threshold
    return pairs[keep], sim[keep]


def _drops(
    pool: pl.DataFrame,
    group: np.ndarray,
    rep: np.ndarray,
    surv: Survivors,
    near: NearEdges,
    protected: np.ndarray,
) -> tuple[np.ndarray, pl.DataFrame]:
    """Which pool rows stay, and a drop row with evidence for each one that does not."""
    row = np.arange(group.size)
    group_kept = surv.kept[group]
    exact = group_kept & (rep[group] != row) & ~protected
    near_drop = ~group_kept & ~protected
    kept = ~(exact | near_drop)

    dropped = np.flatnonzero(~kept)
    g = group[dropped]
    is_exact = exact[dropped]
    edge = np.where(is_exact, 0, surv.edge[g])
    target = np.where(is_exact, rep[g], rep[np.maximum(surv.duplicate_of[g], 0)])
    is_text = pool["kind"].to_numpy()[dropped] == TEXT
    exact_method = np.where(is_text, METHOD_EXACT_TEXT, METHOD_EXACT_PIXELS)
    method = np.where(is_exact, exact_method, near.method[edge] if near.method.size else "")
    similarity = np.where(is_exact, 1.0, surv.similarity[g])
    hamming = np.where(is_exact, -1, near.hamming[edge] if near.hamming.size else -1)
    hamming = np.where(is_text, -1, hamming)

    ids = pool.select("record_id", "source_id", "source_key")
    survivor = ids[target]
    frame = ids[dropped].with_columns(
        pl.Series(
            "reason",
            np.where(is_exact, Reason.DUPLICATE_EXACT.value, Reason.DUPLICATE_NEAR.value),
            pl.String(),
        ),
        pl.struct(
            pl.struct(
                record_id=survivor["record_id"],
                source_id=survivor["source_id"],
                source_key=survivor["source_key"],
            ).alias("duplicate_of"),
            pl.Series("method", method.astype(str), pl.String()),
            pl.Series("similarity", np.round(similarity, 6), pl.Float64()),
            pl.Series("hamming", hamming, pl.Int64()).replace(-1, None),
        )
        .struct.json_encode()
        .str.replace(',"hamming":null', "", literal=True)
        .alias("evidence"),
    )
    return kept, frame.select(list(DROP_SCHEMA))
