"""bench/pipeline.py's synthetic corpus plants what it says it plants."""

import csv
import hashlib
import itertools
import json

import pytest
import yaml

from bench.pipeline import (
    EXACT_SHARE,
    LISTED_SHARE,
    NEAR_SHARE,
    PII_SHARE,
    source_of,
    synthetic_corpus,
    write_project,
)
from resources.core.normalize import normalized_sha256

N = 3000  # three listed items: one per hash type


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(N, seed=3)


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _jaccard(a: str, b: str) -> float:
    x, y = _shingles(a), _shingles(b)
    return len(x & y) / len(x | y)


def test_the_corpus_has_n_documents_of_about_a_kilobyte(corpus):
    assert len(corpus.texts) == N
    mean = sum(len(t.encode()) for t in corpus.texts) / N
    assert 900 <= mean <= 1100


def test_exact_copies_equal_their_original_and_nothing_else_repeats(corpus):
    assert len(corpus.exact) == int(N * EXACT_SHARE)
    assert all(corpus.texts[c] == corpus.texts[o] for c, o in corpus.exact.items())
    # Each exact copy is the only repeat: distinct texts = N - copies.
    assert len(set(corpus.texts)) == N - len(corpus.exact)


def test_near_copies_are_above_the_dedup_threshold_and_unrelated_docs_far_below(corpus):
    assert len(corpus.near) == int(N * NEAR_SHARE)
    similarities = [_jaccard(corpus.texts[c], corpus.texts[o]) for c, o in corpus.near.items()]
    assert min(similarities) > 0.8 and max(similarities) < 1.0
    originals = set(corpus.exact.values()) | set(corpus.near.values())
    unrelated = [i for i in range(50) if i not in originals]
    assert all(
        _jaccard(corpus.texts[a], corpus.texts[b]) == 0 for a, b in itertools.pairwise(unrelated)
    )


def test_pii_is_in_the_planted_documents_only(corpus):
    # The vocabulary has no digits; every PII template carries some (phone, card, SSN, IP, zip).
    with_digits = {i for i, t in enumerate(corpus.texts) if any(ch.isdigit() for ch in t)}
    assert with_digits == corpus.pii
    assert len(corpus.pii) == int(N * PII_SHARE)


def test_every_listed_item_and_only_it_is_on_the_hash_list(corpus):
    assert len(corpus.listed) == len(corpus.hash_rows) == int(N * LISTED_SHARE)
    digest = {
        "sha256": lambda t: hashlib.sha256(t.encode()).hexdigest(),
        "md5": lambda t: hashlib.md5(t.encode()).hexdigest(),
        "sha256_text": normalized_sha256,
    }
    listed = {
        i
        for i, t in enumerate(corpus.texts)
        for h, kind, _ in corpus.hash_rows
        if digest[kind](t) == h
    }
    assert listed == corpus.listed
    assert {kind for _, kind, _ in corpus.hash_rows} == set(digest)
    copied = set(corpus.exact.values()) | set(corpus.near.values())
    assert not (corpus.listed & (corpus.pii | copied))


def test_the_project_holds_every_document_once_and_the_list(corpus, tmp_path):
    params = write_project(tmp_path, corpus, engine="ray")
    assert params.exists() and (tmp_path / ".assay" / "keys" / "release.pem").exists()
    assert yaml.safe_load(params.read_text())["engine"]["kind"] == "ray"
    lines = [
        json.loads(line)
        for path in sorted((tmp_path / "data" / "raw").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert sorted(d["text"] for d in lines) == sorted(corpus.texts)
    assert len({d["id"] for d in lines}) == N
    assert len({source_of(i) for i in range(N)}) == len(list((tmp_path / "data/raw").iterdir()))
    with (tmp_path / "data" / "hashlists" / "bench.csv").open() as f:
        rows = [tuple(r) for r in csv.reader(f)][1:]
    assert rows == corpus.hash_rows
