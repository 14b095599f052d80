"""Exact radius search over 64-bit hashes: multi-index hashing (Norouzi et al., 2012).

A 64-bit hash is cut into four 16-bit chunks. If two hashes differ in at most t bits and the
chunks are given radii r_i with sum(r_i + 1) > t, then at least one chunk i differs in at most
r_i bits (pigeonhole). So the index keeps, per chunk, the entries sorted by that chunk's value
with a table of where each of the 65,536 values starts; a query probes every chunk value within
r_i of its own, and only the entries in those buckets are compared in full. No neighbour within
t is ever missed, and the work per query does not grow with the list, only the bucket sizes do.

16-bit chunks keep each start table at 256 KiB, so the probes hit cache. Queries are taken in
the order of their chunk value, so neighbouring queries probe the same buckets while they are
still cached. A pair found through more than one chunk is reported once: only by the first
chunk that could have found it.

Small lists are scanned linearly, which is faster than probing hundreds of empty buckets.
"""

from __future__ import annotations

from itertools import combinations

import numba
import numpy as np

CHUNKS = 4
CHUNK_BITS = 16
_BUCKETS = 1 << CHUNK_BITS
_SHIFTS = np.array([48, 32, 16, 0], dtype=np.uint64)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@numba.njit(cache=True)
def _grow(array: np.ndarray, size: int) -> np.ndarray:
    bigger = np.empty(max(16, 2 * size), dtype=array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


@numba.njit(cache=True)
def _count_within(q, hashes, limit):
    n = 0
    for ei in range(hashes.shape[0]):
        if _popcount(q ^ hashes[ei]) <= limit:
            n += 1
    return n


@numba.njit(cache=True)
def _scan(queries, hashes, max_distance):
    out_q = np.empty(16, dtype=np.int64)
    out_e = np.empty(16, dtype=np.int64)
    out_d = np.empty(16, dtype=np.int64)
    n = 0
    limit = np.uint64(max_distance)
    for qi in range(queries.shape[0]):
        q = queries[qi]
        # Matches are rare: a branch-free counting pass vectorizes, the collecting pass does not.
        if _count_within(q, hashes, limit) == 0:
            continue
        for ei in range(hashes.shape[0]):
            d = _popcount(q ^ hashes[ei])
            if d <= limit:
                if n == out_q.shape[0]:
                    out_q = _grow(out_q, n)
                    out_e = _grow(out_e, n)
                    out_d = _grow(out_d, n)
                out_q[n] = qi
                out_e[n] = ei
                out_d[n] = d
                n += 1
    return out_q[:n], out_e[:n], out_d[:n]


@numba.njit(cache=True)
def _probe_chunk(
    queries,
    query_order,
    chunk,
    radii,
    masks,
    starts,
    sorted_hashes,
    sorted_ids,
    max_distance,
):
    out_q = np.empty(16, dtype=np.int64)
    out_e = np.empty(16, dtype=np.int64)
    out_d = np.empty(16, dtype=np.int64)
    n = 0
    limit = np.uint64(max_distance)
    shift = np.uint64(48 - 16 * chunk)
    low16 = np.uint64(0xFFFF)
    for k in range(query_order.shape[0]):
        qi = query_order[k]
        q = queries[qi]
        key = (q >> shift) & low16
        for mi in range(masks.shape[0]):
            probe = key ^ masks[mi]
            begin = starts[probe]
            end = starts[probe + np.uint64(1)]
            for pos in range(begin, end):
                h = sorted_hashes[pos]
                x = q ^ h
                d = _popcount(x)
                if d > limit:
                    continue
                # Report the pair only from the first chunk whose radius admits it.
                earlier = False
                for c in range(chunk):
                    s = np.uint64(48 - 16 * c)
                    if _popcount((x >> s) & low16) <= np.uint64(radii[c]):
                        earlier = True
                        break
                if earlier:
                    continue
                if n == out_q.shape[0]:
                    out_q = _grow(out_q, n)
                    out_e = _grow(out_e, n)
                    out_d = _grow(out_d, n)
                out_q[n] = qi
                out_e[n] = sorted_ids[pos]
                out_d[n] = d
                n += 1
    return out_q[:n], out_e[:n], out_d[:n]


def chunk_radii(max_distance: int) -> list[int]:
    """Per-chunk probe radii, -1 for an unused chunk, with sum(r_i + 1) = max_distance + 1."""
    need = max_distance + 1
    if need <= CHUNKS:
        return [0] * need + [-1] * (CHUNKS - need)
    base, extra = divmod(need, CHUNKS)
    return [base - 1 + (1 if i < extra else 0) for i in range(CHUNKS)]


def _masks(radius: int) -> np.ndarray:
    masks = [0]
    for weight in range(1, radius + 1):
        for bits in combinations(range(CHUNK_BITS), weight):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.uint64)


def _probes_per_query(max_distance: int) -> int:
    return sum(len(_masks(r)) for r in chunk_radii(max_distance) if r >= 0)


class HammingIndex:
    """All entries within ``max_distance`` bits of each query, found exactly."""

    def __init__(self, hashes: np.ndarray, max_distance: int, scan_below: int | None = None):
        if not 0 <= max_distance < 64:
            raise ValueError(f"max_distance must be in 0..63, got {max_distance}")
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.max_distance = max_distance
        if scan_below is None:
            # Probing costs about one bucket visit per probe plus the bucket's entries; below
            # that, comparing against every entry is cheaper.
            probes = _probes_per_query(max_distance)
            scan_below = probes * (1 + len(self.hashes) / _BUCKETS) * 4
        self.uses_scan = len(self.hashes) < scan_below
        if not self.uses_scan:
            self._build()

    def __len__(self) -> int:
        return len(self.hashes)

    def _build(self) -> None:
        self.radii = np.array(chunk_radii(self.max_distance), dtype=np.int64)
        self.tables = []
        for chunk, radius in enumerate(self.radii):
            if radius < 0:
                continue
            keys = (self.hashes >> _SHIFTS[chunk]) & np.uint64(0xFFFF)
            order = np.argsort(keys, kind="stable")
            starts = np.zeros(_BUCKETS + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys.astype(np.int64), minlength=_BUCKETS), out=starts[1:])
            self.tables.append(
                (
                    chunk,
                    _masks(int(radius)),
                    starts,
                    self.hashes[order],
                    order.astype(np.int64),
                )
            )

    def query(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, entry index, distance) of every pair within max_distance."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if len(self.hashes) == 0 or len(queries) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        if self.uses_scan:
            return _scan(queries, self.hashes, self.max_distance)
        parts = []
        for chunk, masks, starts, sorted_hashes, sorted_ids in self.tables:
            keys = (queries >> _SHIFTS[chunk]) & np.uint64(0xFFFF)
            order = np.argsort(keys, kind="stable").astype(np.int64)
            parts.append(
                _probe_chunk(
                    queries,
                    order,
                    chunk,
                    self.radii,
                    masks,
                    starts,
                    sorted_hashes,
                    sorted_ids,
                    self.max_distance,
                )
            )
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def linear_scan(
    queries: np.ndarray, hashes: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The baseline: every query against every entry."""
    return _scan(
        np.ascontiguousarray(queries, dtype=np.uint64),
        np.ascontiguousarray(hashes, dtype=np.uint64),
        max_distance,
    )


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between (broadcast) uint64 hashes."""
    return np.bitwise_count(np.asarray(a, np.uint64) ^ np.asarray(b, np.uint64)).astype(np.int64)


def pairs_within(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (i, j) with i < j, distances) of hashes within max_distance bits of each other."""
    found, entry, dist = HammingIndex(hashes, max_distance).query(hashes)
    keep = found < entry
    pairs = np.column_stack([found[keep], entry[keep]]).astype(np.int64).reshape(-1, 2)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], dist[keep][order].astype(np.int64)
