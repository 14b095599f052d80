import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.core.hamming import HammingIndex, chunk_radii, hamming, linear_scan, pairs_within


def _flip(value: int, bits) -> int:
    for bit in bits:
        value ^= 1 << int(bit)
    return value


def _pairs(result) -> list[tuple[int, int, int]]:
    return sorted(zip(*(a.tolist() for a in result), strict=True))


@pytest.mark.parametrize("max_distance", [0, 1, 3, 4, 7, 10, 15])
def test_chunk_radii_satisfy_the_pigeonhole_bound(max_distance):
    radii = chunk_radii(max_distance)
    assert sum(r + 1 for r in radii if r >= 0) == max_distance + 1


@pytest.mark.parametrize("scan_below", [0, 10**9])
@pytest.mark.parametrize("max_distance", [0, 4, 10])
def test_threshold_boundary_is_inclusive(scan_below, max_distance):
    rng = np.random.default_rng(max_distance)
    base = int(rng.integers(0, 2**63)) * 2 + 1
    bits = rng.choice(64, max_distance + 1, replace=False)
    at_limit = _flip(base, bits[:max_distance])
    past_limit = _flip(base, bits)
    index = HammingIndex(
        np.array([at_limit, past_limit], dtype=np.uint64), max_distance, scan_below
    )
    assert index.uses_scan == (scan_below > 0)
    assert _pairs(index.query(np.array([base], dtype=np.uint64))) == [(0, 0, max_distance)]


@pytest.mark.parametrize("max_distance", [0, 3, 10, 13])
def test_multi_index_finds_exactly_what_a_linear_scan_finds(max_distance):
    rng = np.random.default_rng(100 + max_distance)
    entries = rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64, endpoint=True)
    queries = rng.integers(0, 2**64 - 1, 400, dtype=np.uint64, endpoint=True)
    # Plant neighbours at every distance up to two past the limit, and exact duplicates.
    for i in range(200):
        distance = i % (max_distance + 3)
        queries[i] = _flip(int(entries[i * 7]), rng.choice(64, distance, replace=False))
    entries[5] = entries[7 * 3]
    index = HammingIndex(entries, max_distance, scan_below=0)
    assert not index.uses_scan
    found = _pairs(index.query(queries))
    assert found == _pairs(linear_scan(queries, entries, max_distance))
    assert len(found) == len(set(found))
    assert sum(1 for q, _, _ in found if q < 200) >= 200 * (max_distance + 1) // (max_distance + 3)
    assert all(d <= max_distance for _, _, d in found)


def test_empty_index_and_empty_queries():
    index = HammingIndex(np.array([], dtype=np.uint64), 5)
    assert _pairs(index.query(np.array([1], dtype=np.uint64))) == []
    full = HammingIndex(np.array([1, 2], dtype=np.uint64), 5)
    assert _pairs(full.query(np.array([], dtype=np.uint64))) == []


def test_rejects_an_impossible_distance():
    with pytest.raises(ValueError):
        HammingIndex(np.array([1], dtype=np.uint64), 64)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    st.sets(st.integers(0, 63), max_size=6),
    st.integers(1, 8),
)
def test_pairs_within_finds_every_pair_within_distance(h, flips, k):
    flips = set(list(flips)[:k])
    other = h
    for bit in flips:
        other ^= 1 << bit
    noise = np.random.default_rng(h % 1000).integers(0, 2**63, 20, dtype=np.uint64)
    hashes = np.concatenate([np.array([h, other], dtype=np.uint64), noise])
    pairs, dist = pairs_within(hashes, k)
    assert [0, 1] in pairs.tolist()
    assert (dist <= k).all() and (pairs[:, 0] < pairs[:, 1]).all()


def test_hamming():
    a = np.array([0, 0b1011], dtype=np.uint64)
    b = np.array([2**63, 0], dtype=np.uint64)
    assert hamming(a, b).tolist() == [1, 3]
