import numpy as np
import pytest

from resources.dedup.audit import estimated_at_least


def _brute_force(sig: np.ndarray, sample: np.ndarray, floor: float) -> set[tuple[int, int]]:
    est = (sig[sample, None, :] == sig[None, :, :]).mean(axis=2)
    rows, others = np.nonzero(est >= floor)
    return {(int(sample[r]), int(o)) for r, o in zip(rows, others, strict=True) if sample[r] != o}


@pytest.fixture(scope="module")
def signatures() -> np.ndarray:
    rng = np.random.default_rng(3)
    # a small alphabet, so unrelated rows share slots by chance, plus pairs planted at every
    # similarity from half to all of the slots
    sig = rng.integers(0, 40, (4000, 128), dtype=np.uint32)
    for _ in range(400):
        a, b = rng.integers(0, len(sig), 2)
        same = rng.choice(128, rng.integers(64, 129), replace=False)
        sig[b, same] = sig[a, same]
    return sig


@pytest.mark.parametrize("floor", [1.0, 0.9, 0.8, 0.65, 0.5, 0.2, 0.01, 0.0, -0.1])
def test_block_search_finds_exactly_what_brute_force_finds(signatures, floor):
    sample = np.sort(np.random.default_rng(4).choice(len(signatures), 300, replace=False))
    found = {tuple(p) for p in estimated_at_least(signatures, sample, floor).tolist()}
    assert found == _brute_force(signatures, sample, floor)


def test_no_pair_of_a_row_with_itself_and_an_empty_sample_finds_nothing(signatures):
    copies = np.repeat(signatures[:3], 2, axis=0)
    pairs = estimated_at_least(copies, np.arange(6), 0.8)
    assert {tuple(p) for p in pairs.tolist()} == {
        (a, b) for a in range(6) for b in range(6) if a != b and a // 2 == b // 2
    }
    assert estimated_at_least(signatures, np.empty(0, np.int64), 0.8).shape == (0, 2)
