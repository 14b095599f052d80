import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.dedup.config import MinHashConfig
from resources.dedup.minhash import (
    choose_bands,
    estimated_jaccard,
    exact_jaccard,
    minhash_texts,
    permutations,
    s_curve,
    shingle_hashes,
    signatures,
)

WORDS = [f"w{i}x" for i in range(3000)]


def random_text(rng: np.random.Generator, n: int = 80) -> str:
    return " ".join(rng.choice(WORDS, n))


def test_signatures_are_datasketchs_for_the_same_shingles():
    cfg = MinHashConfig(num_perm=64, seed=7)
    rng = np.random.default_rng(1)
    texts = [random_text(rng), "", "too short", random_text(rng, 300)]
    batch = shingle_hashes(texts, cfg)
    sig = signatures(batch, cfg.num_perm, cfg.seed)
    for i in range(len(texts)):
        ref = MinHash(num_perm=64, seed=7, hashfunc=int)
        ref.update_batch([int(h >> np.uint64(32)) for h in batch.of(i)])
        assert np.array_equal(ref.hashvalues, sig[i])
    lean = LeanMinHash(seed=7, hashvalues=sig[0], scheme="affine32")
    assert lean.jaccard(LeanMinHash(seed=7, hashvalues=sig[0], scheme="affine32")) == 1.0


def test_normalization_case_and_whitespace_do_not_change_shingles():
    cfg = MinHashConfig()
    a = shingle_hashes(["The  quick brown\tfox jumps over the lazy dog"], cfg).of(0)
    b = shingle_hashes(["the quick BROWN fox\njumps over the lazy dog "], cfg).of(0)
    assert np.array_equal(a, b)


def test_word_order_matters_and_short_texts_get_one_shingle():
    cfg = MinHashConfig(ngram=3)
    batch = shingle_hashes(["a b c d", "d c b a", "a b", "", "   "], cfg)
    assert np.diff(batch.offsets).tolist() == [2, 2, 1, 0, 0]
    assert not set(batch.of(0).tolist()) & set(batch.of(1).tolist())


def test_word_at_end_of_document_hashes_like_inside():
    cfg = MinHashConfig(ngram=1)
    a = shingle_hashes(["alpha beta", "beta alpha"], cfg)
    assert set(a.of(0).tolist()) == set(a.of(1).tolist())


def test_char_shingles():
    cfg = MinHashConfig(shingle="char", ngram=3)
    batch = shingle_hashes(["abcd", "abcd", "xbcd"], cfg)
    assert np.diff(batch.offsets).tolist() == [2, 2, 2]
    assert exact_jaccard(batch.of(0), batch.of(2)) == pytest.approx(1 / 3)


def test_estimate_tracks_exact_jaccard():
    cfg = MinHashConfig(num_perm=256)
    rng = np.random.default_rng(2)
    words = random_text(rng, 400).split()
    other = list(words)
    other[100:160] = rng.choice(WORDS, 60)
    batch = shingle_hashes([" ".join(words), " ".join(other)], cfg)
    true = exact_jaccard(batch.of(0), batch.of(1))
    sig = signatures(batch, cfg.num_perm, cfg.seed)
    est = estimated_jaccard(sig, np.array([0]), np.array([1]))[0]
    assert 0.6 < true < 0.8
    assert abs(est - true) < 0.1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=60), min_size=1, max_size=6))
def test_batching_does_not_change_a_documents_signature(texts):
    cfg = MinHashConfig(num_perm=32, ngram=2)
    together = minhash_texts(texts, cfg)
    alone = np.vstack([minhash_texts([t], cfg) for t in texts])
    assert np.array_equal(together, alone)


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_bands_reach_the_recall_target(threshold, num_perm):
    bands, rows = choose_bands(threshold, num_perm, 0.95)
    assert bands * rows <= num_perm
    assert s_curve(threshold, bands, rows) >= 0.95


def test_bands_beat_datasketch_defaults_at_the_threshold():
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    bands, rows = choose_bands(0.8, 128, 0.95)
    assert s_curve(0.8, lsh.b, lsh.r) < 0.95 <= s_curve(0.8, bands, rows)
    assert s_curve(0.3, bands, rows) < 0.01


def test_impossible_recall_is_an_error():
    with pytest.raises(ValueError):
        choose_bands(0.5, 1, 0.99)


def test_permutations_are_datasketchs():
    a, b = permutations(16, 3)
    ref = MinHash(num_perm=16, seed=3)
    assert np.array_equal(a, ref.permutations[0]) and np.array_equal(b, ref.permutations[1])


def test_large_batches_are_sliced_without_changing_shingles(monkeypatch):
    import resources.dedup.minhash as minhash

    rng = np.random.default_rng(5)
    texts = [random_text(rng, int(rng.integers(1, 60))) for _ in range(40)] + [""]
    whole = shingle_hashes(texts, MinHashConfig())
    monkeypatch.setattr(minhash, "_SLICE_CHARS", 500)
    sliced = shingle_hashes(texts, MinHashConfig())
    assert np.array_equal(whole.offsets, sliced.offsets)
    assert np.array_equal(whole.hashes, sliced.hashes)
