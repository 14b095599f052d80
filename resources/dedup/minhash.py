"""MinHash signatures of texts, for a whole batch of documents at once.

The signatures are datasketch's ("affine32" scheme: a 32-bit shingle hash, the MurmurHash3
finalizer, then h -> a*h + b mod 2^32 with datasketch's own permutations), so any signature
here loads into ``datasketch.LeanMinHash`` and compares with its ``jaccard``. What differs is
how they are computed: datasketch hashes shingles one Python call at a time; here the
shingles of a whole batch are hashed with numpy over the code points of the concatenated
normalized texts, and the permutations are applied to the batch's shingles in chunks, with
a segmented minimum per document. That is what makes this faster than DataTrove's per-shingle
loop (bench/dedup.py measures it).
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash

from resources.core.normalize import normalize_text
from resources.dedup.config import MinHashConfig

SCHEME = "affine32"
EMPTY_HASH = np.uint32(0xFFFFFFFF)
"""datasketch's value for a permutation that saw no shingle (its empty MinHash)."""

_U64 = np.uint64
_TOKEN_BASE = _U64(0x100000001B3)  # odd, so the per-position powers never collapse to zero
_NGRAM_BASE = _U64(0x9E3779B97F4A7C15)
# Bounds the (shingles x permutations) working block to a few MB, so it stays in cache.
_CHUNK_CELLS = 1 << 20
_SLICE_CHARS = 1 << 22


@dataclass(frozen=True)
class ShingleBatch:
    """64-bit shingle hashes of a batch; doc i's are hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray
    offsets: np.ndarray

    def of(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads structured sums over all 64 bits."""
    x = x + _U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def shingle_hashes(
    texts: Sequence[str], config: MinHashConfig, normalized: bool = False
) -> ShingleBatch:
    """Hash the word or character n-grams of each normalized text.

    normalized=True says the texts already went through normalize_text. A text with fewer
    tokens than n has one shingle (all its tokens), so short texts still compare; a text
    with no tokens has none.
    """
    if not normalized:
        texts = [normalize_text(t) for t in texts]
    # Word hashing keeps per-position tables as long as the bytes hashed at once, so large
    # batches go through in slices of about _SLICE_CHARS.
    lengths = np.fromiter((len(t) + 1 for t in texts), np.int64, len(texts))
    cuts = np.searchsorted(np.cumsum(lengths), np.arange(_SLICE_CHARS, lengths.sum(), _SLICE_CHARS))
    bounds = [0, *np.unique(cuts[(cuts > 0) & (cuts < len(texts))]).tolist(), len(texts)]
    if len(bounds) == 2:
        return _shingle_slice(texts, config)
    parts = [_shingle_slice(texts[a:b], config) for a, b in itertools.pairwise(bounds)]
    starts = np.cumsum([0] + [p.hashes.size for p in parts[:-1]])
    offsets = np.concatenate(
        [[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts, strict=True)]
    ).astype(np.int64)
    return ShingleBatch(hashes=np.concatenate([p.hashes for p in parts]), offsets=offsets)


def _shingle_slice(texts: Sequence[str], config: MinHashConfig) -> ShingleBatch:
    # normalize_text collapses all whitespace to single spaces, so "\n" can end each document.
    joined = "\n".join(texts) + "\n"
    if config.shingle == "word":
        # UTF-8 is enough for words: a space or newline byte never occurs inside a
        # multi-byte character, and a word's hash only needs its bytes.
        data = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
        tokens, token_pos = _word_tokens(data)
    else:
        data = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        token_pos = np.flatnonzero(data != 10)
        tokens = mix64(data[token_pos].astype(_U64))
    doc_ends = np.flatnonzero(data == 10)
    return _ngrams(tokens, np.searchsorted(doc_ends, token_pos), len(texts), config.ngram)


def _word_tokens(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hash of each space-separated word and the byte position where it starts.

    A word's hash is sum(byte_k * B^k) over its bytes, then mixed. Computed for all words at
    once: every byte is weighted by B^(its global position), the weights are summed per word
    (reduceat), and each sum is shifted back by B^-(word start), B being odd and so
    invertible modulo 2^64.
    """
    sep = np.flatnonzero((data == 32) | (data == 10))
    starts = np.concatenate(([0], sep[:-1] + 1))
    starts = starts[sep > starts]
    if starts.size == 0:
        return np.empty(0, _U64), starts
    powers, inverses = _power_tables(data.size)
    values = data.astype(_U64)
    values *= powers[: data.size]
    values[sep] = 0
    sums = np.add.reduceat(values, starts)
    sums *= inverses[starts]
    return mix64(sums), starts


_TABLES: dict[str, np.ndarray] = {}


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """B^i and B^-i mod 2^64 for i < n (at least), grown to powers of two and kept."""
    if _TABLES.get("powers", np.empty(0)).size < n:
        size = 1 << max(16, (n - 1).bit_length())
        _TABLES["powers"] = _geometric(_TOKEN_BASE, size)
        _TABLES["inverses"] = _geometric(_U64(pow(int(_TOKEN_BASE), -1, 1 << 64)), size)
    return _TABLES["powers"], _TABLES["inverses"]


def _geometric(base: np.uint64, n: int) -> np.ndarray:
    """base^i mod 2^64 for i < n (n a power of two >= 2^16).

    As an outer product of base^(1024 j) and base^k: two short cumulative products instead of
    one long one, which numpy runs slowly on uint64.
    """
    low = np.ones(1024, dtype=_U64)
    low[1:] = np.cumprod(np.full(1023, base, dtype=_U64))
    step = _U64(int(low[-1]) * int(base) % (1 << 64))
    high = np.ones(n // 1024, dtype=_U64)
    high[1:] = np.cumprod(np.full(n // 1024 - 1, step, dtype=_U64))
    return np.multiply.outer(high, low).reshape(-1)


def _ngrams(tokens: np.ndarray, doc_of_token: np.ndarray, n_docs: int, n: int) -> ShingleBatch:
    m = tokens.size
    counts = np.bincount(doc_of_token, minlength=n_docs)
    doc_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(m) - doc_start[doc_of_token]
    acc = tokens.copy()
    for k in range(1, n):
        nxt = np.zeros(m, _U64)
        nxt[: m - k] = tokens[k:]
        same_doc = np.zeros(m, bool)
        same_doc[: m - k] = doc_of_token[k:] == doc_of_token[: m - k]
        acc = acc * _NGRAM_BASE + np.where(same_doc, nxt, _U64(0))
    doc_count = counts[doc_of_token]
    is_start = (pos <= doc_count - n) | ((doc_count < n) & (pos == 0))
    hashes = mix64(acc[is_start])
    per_doc = np.bincount(doc_of_token[is_start], minlength=n_docs)
    offsets = np.concatenate(([0], np.cumsum(per_doc))).astype(np.int64)
    return ShingleBatch(hashes=hashes, offsets=offsets)


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own (a, b) for this num_perm and seed, so signatures stay comparable."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(batch: ShingleBatch, num_perm: int, seed: int) -> np.ndarray:
    """(documents x num_perm) uint32 MinHash values; a document with no shingle gets
    datasketch's empty value in every slot."""
    a, b = permutations(num_perm, seed)
    a, b = a[:, None], b[:, None]
    n_docs = batch.offsets.size - 1
    out = np.full((n_docs, num_perm), EMPTY_HASH, dtype=np.uint32)
    hv = fmix32((batch.hashes >> _U64(32)).astype(np.uint32))
    docs = np.flatnonzero(np.diff(batch.offsets))
    if docs.size == 0:
        return out
    # Permutations along rows and shingles along columns: the per-document minimum then
    # reduces contiguous memory, several times faster than reducing down the columns.
    budget = max(1, _CHUNK_CELLS // num_perm)
    ends = batch.offsets[docs + 1]
    i = 0
    while i < docs.size:
        lo = batch.offsets[docs[i]]
        j = max(i + 1, int(np.searchsorted(ends, lo + budget, side="right")))
        hi = ends[j - 1]
        block = a * hv[lo:hi]
        block += b
        starts = batch.offsets[docs[i:j]] - lo
        out[docs[i:j]] = np.minimum.reduceat(block, starts, axis=1).T
        i = j
    return out


def minhash_texts(texts: Sequence[str], config: MinHashConfig) -> np.ndarray:
    """Signatures of texts: shingle_hashes then signatures."""
    return signatures(shingle_hashes(texts, config), config.num_perm, config.seed)


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that a pair of Jaccard s shares at least one of b bands of r rows."""
    return 1.0 - (1.0 - np.power(s, rows)) ** bands


def choose_bands(threshold: float, num_perm: int, min_recall: float = 0.95) -> tuple[int, int]:
    """(bands, rows) with recall >= min_recall for pairs at the threshold, and the fewest
    expected candidates below it (the area under the S-curve on [0, threshold]).

    Candidates are verified before anything is removed, so false candidates cost only time;
    a missed pair is a duplicate left in. Hence recall is the constraint, candidates the cost.
    """
    grid = np.linspace(0.0, threshold, 512)
    best: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if s_curve(threshold, bands, rows) < min_recall:
            continue
        area = float(np.trapezoid(s_curve(grid, bands, rows), grid))
        if best is None or (area, bands) < (best[0], best[1]):
            best = (area, bands, rows)
    if best is None:
        raise ValueError(f"no banding of {num_perm} permutations reaches recall {min_recall}")
    return best[1], best[2]


def estimated_jaccard(sig: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Fraction of equal MinHash values for each pair (left[i], right[i]) of rows of sig."""
    out = np.empty(left.size, dtype=np.float64)
    step = max(1, _CHUNK_CELLS // sig.shape[1])
    for s in range(0, left.size, step):
        eq = sig[left[s : s + step]] == sig[right[s : s + step]]
        out[s : s + step] = eq.mean(axis=1)
    return out


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two shingle-hash sets (duplicates within a set ignored)."""
    ua, ub = np.unique(a), np.unique(b)
    if ua.size == 0 and ub.size == 0:
        return 1.0
    inter = np.intersect1d(ua, ub, assume_unique=True).size
    return inter / (ua.size + ub.size - inter)
