import numpy as np

from resources.dedup.lsh import band_keys, candidate_pairs


def test_items_sharing_one_band_are_candidates():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 6, 8, 0]], dtype=np.uint32)
    pairs = candidate_pairs(band_keys(sig, bands=2, rows=2))
    assert pairs.tolist() == [[0, 1], [0, 2]]


def test_no_candidates_without_shared_bands():
    sig = np.arange(40, dtype=np.uint32).reshape(10, 4)
    assert candidate_pairs(band_keys(sig, 2, 2)).shape == (0, 2)
    assert candidate_pairs(band_keys(sig[:1], 2, 2)).shape == (0, 2)


def test_band_position_matters():
    sig = np.array([[1, 2, 3, 4], [3, 4, 1, 2]], dtype=np.uint32)
    assert candidate_pairs(band_keys(sig, 2, 2)).shape == (0, 2)


def test_oversized_bucket_is_linked_to_its_head_only():
    keys = np.zeros((6, 1), dtype=np.uint64)
    pairs = candidate_pairs(keys, max_bucket=3)
    assert pairs.tolist() == [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]]
    assert candidate_pairs(keys, max_bucket=10).shape == (15, 2)
