"""rescreen: a list naming a record an earlier run passed purges it everywhere and taints the
training run that used it; a second rescreen changes nothing."""

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from resources.core.corpus import Corpus, Policy, Source
from resources.core.ledger import Ledger
from resources.core.normalize import normalized_sha256
from resources.core.storage import file_sha256
from resources.dedup import stage as dedup
from resources.dedup.config import DedupConfig
from resources.ingest.readers import ReadSpec
from resources.ingest.stage import Screening, ingest_source
from resources.screen import rescreen
from resources.screen.config import ScreenConfig
from resources.scrub import stage as scrub
from resources.scrub.config import ScrubConfig
from resources.train import stage as train
from resources.train.config import TrainConfig

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "paper", "seven", "quiet"]
UNRELATED = "0" * 64
TINY_TRAIN = TrainConfig(
    model_kwargs={"context": 4, "window": 16, "embed_dim": 8, "hidden": 32},
    target_epsilon=4.0,
    target_delta=1e-3,
    epsilon_budget=6.0,
    epochs=1,
    batch_size=16,
    max_examples_per_unit=2,
    canaries=2,
    canary_digits=2,
    canary_insertions=2,
    holdout_fraction=0.25,
)
CONFIG = ScreenConfig(hashlists_dir="hashlists", hash_cache="data/cache/hashes.parquet")


def _texts(n: int = 80) -> list[str]:
    rng = random.Random(0)
    return [
        f"post {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
        for i in range(n)
    ]


def _corpus(root: Path) -> Corpus:
    raw = root / "raw"
    raw.mkdir()
    # The later-listed text appears twice (two posts), so dedup keeps one and drops the other.
    lines = [{"id": f"p{i}", "text": t} for i, t in enumerate(_texts())]
    lines.append({"id": "p-copy", "text": lines[3]["text"]})
    (raw / "forum.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "hashlists").mkdir()
    (root / "hashlists" / "first.csv").write_text(f"hash,type\n{UNRELATED},sha256\n")
    source = Source(
        id="forum",
        path="raw/forum.jsonl",
        format="jsonl",
        text_field="text",
        id_field="id",
        license="CC0-1.0",
        consent="public_domain",
        uri="https://example.org/forum",
        retrieved_at=datetime(2026, 1, 1, tzinfo=UTC),
        owner="test@example.org",
    )
    return Corpus(root, root / "data", (source,), Policy())


def _pipeline(corpus: Corpus, ledger: Ledger) -> None:
    source = corpus.sources[0]
    spec = ReadSpec(source.text_field, source.id_field)
    screening = Screening.from_config(CONFIG, corpus)
    out = corpus.output("ingest", source.id)
    ingest_source(
        source, corpus.resolve(source.path), corpus.policy, spec, out, ledger, "r1", screening
    )
    dedup.run(DedupConfig(), ledger, "r1", corpus)
    scrub.run(ScrubConfig(), ledger, "r1", corpus)
    train.run(TINY_TRAIN, ledger, "r1", corpus)


def _files(data_dir: Path) -> dict[str, str]:
    return {str(p): file_sha256(p) for p in sorted(data_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rescreened(tmp_path_factory):
    root = tmp_path_factory.mktemp("rescreen")
    corpus = _corpus(root)
    ledger = Ledger(root / "data" / "ledger.duckdb")
    _pipeline(corpus, ledger)
    listed = _texts()[3]
    target = ledger.query("SELECT DISTINCT record_id FROM records WHERE source_key = 'p3'").item()
    before = _files(corpus.data_dir)
    (root / "hashlists" / "later.csv").write_text(
        f"hash,type,label\n{normalized_sha256(listed)},sha256_text,listed later\n"
    )
    first = rescreen.run(CONFIG, ledger, "r2", corpus)
    return corpus, ledger, target, listed, before, first


def test_a_later_list_purges_the_record_from_every_artifact(rescreened):
    corpus, _, target, listed, _, outcome = rescreened
    assert outcome.purged_record_ids == [target]
    stages = {Path(p["path"]).relative_to(corpus.data_dir).parts[0] for p in outcome.purges}
    assert stages == {"ingest", "dedup", "scrub"}
    paths = {Path(p["path"]).relative_to(corpus.data_dir).as_posix() for p in outcome.purges}
    assert "dedup/_signatures/accepted.parquet" in paths
    for path in corpus.data_dir.rglob("*.parquet"):
        if "cache" in path.parts:
            continue
        frame = pl.read_parquet(path)
        if "record_id" in frame.columns:
            assert target not in frame["record_id"].to_list(), path
        if "text" in frame.columns:
            assert listed not in frame["text"].to_list(), path


def test_each_purge_and_taint_is_in_the_ledger(rescreened):
    _, ledger, target, _, before, outcome = rescreened
    purges = ledger.query("SELECT * FROM purges ORDER BY path")
    assert purges.height == len(outcome.purges) >= 4
    for row in purges.iter_rows(named=True):
        assert before[row["path"]] == row["old_sha256"] != row["new_sha256"]
        assert file_sha256(row["path"]) == row["new_sha256"]
        assert json.loads(row["record_ids"])["ids"] == [target]
    incidents = ledger.query("SELECT * FROM incidents WHERE kind = 'retroactive'")
    # Both occurrences (p3 and its exact copy p-copy) are reported.
    assert sorted(incidents["source_key"]) == ["p-copy", "p3"]
    assert json.loads(incidents["affected_artifacts"][0])
    training_run = ledger.query("SELECT run_id FROM training_runs").item()
    tainted = ledger.query("SELECT DISTINCT training_run_id FROM tainted_runs")
    assert outcome.tainted_runs == tainted["training_run_id"].to_list() == [training_run]
    assert ledger.verify().ok


def test_a_second_rescreen_changes_nothing(rescreened):
    corpus, ledger, target, _, _, _ = rescreened
    files = _files(corpus.data_dir / "ingest") | _files(corpus.data_dir / "dedup")
    counts = {t: ledger.query(f"SELECT count(*) FROM {t}").item() for t in ("purges", "incidents")}
    again = rescreen.run(CONFIG, ledger, "r3", corpus)
    assert not again.changed and again.matched_records == [target]
    assert files == _files(corpus.data_dir / "ingest") | _files(corpus.data_dir / "dedup")
    assert counts == {
        t: ledger.query(f"SELECT count(*) FROM {t}").item() for t in ("purges", "incidents")
    }
    assert ledger.verify().ok
