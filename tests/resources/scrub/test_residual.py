"""The residual re-scan: whole or sampled by record_id, and the bound the check compares."""

import hashlib
from collections import Counter

import duckdb
import polars as pl
import pytest

from resources.core.ledger import Ledger
from resources.core.records import RECORD_SCHEMA, TEXT
from resources.core.storage import stage_path, write_stage
from resources.release.facts import pii_residual_facts
from resources.scrub.config import ScrubConfig
from resources.scrub.residual import SourceResidual, in_sample, rescan


def _ids(n: int) -> pl.Series:
    return pl.Series([hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)])


def test_the_sample_is_about_its_share_and_the_same_ids_each_time():
    ids = _ids(20_000)
    picked = in_sample(ids, 0.1)
    assert 1_800 < picked.sum() < 2_200
    assert picked.equals(in_sample(ids.reverse(), 0.1).reverse())
    assert (in_sample(ids, 0.05) & ~picked).sum() == 0  # a smaller sample is inside a larger
    assert in_sample(ids, 1.0).all()


def test_a_whole_source_has_its_exact_rate_and_a_sample_a_bound_above_it():
    whole = SourceResidual("s", docs=3, confidence=0.95)
    whole.add([Counter(), Counter({"PERSON": 2}), Counter()])
    assert whole.per_10k == whole.per_10k_upper == pytest.approx(10_000 * 2 / 3)
    sampled = SourceResidual("s", docs=1_000_000, confidence=0.95)
    sampled.add([Counter()] * 9_990 + [Counter({"EMAIL_ADDRESS": 1})] * 10)
    assert sampled.per_10k == pytest.approx(10.0)
    assert 15.0 < sampled.per_10k_upper < 17.5  # exact Poisson bound on 10 events: 16.96
    assert type(sampled.per_10k_upper) is float  # Dagster's check result takes no numpy bool
    nothing = SourceResidual("s", docs=1_000_000, confidence=0.95)
    nothing.add([Counter()] * 10_000)
    assert nothing.per_10k == 0 and nothing.per_10k_upper == pytest.approx(2.97, abs=0.01)


def test_reading_more_of_a_source_never_loosens_its_bound_and_reading_none_fails():
    def bound(docs: int, found: int, scanned: int = 10_000) -> float:
        source = SourceResidual("s", docs=docs, confidence=0.95)
        source.add([Counter({"PERSON": 1})] * found + [Counter()] * (scanned - found))
        return source.per_10k_upper

    assert bound(10_001, 45) == pytest.approx(45.0, abs=0.01)  # all but one text read: 45/10k
    assert bound(10_000, 45) == pytest.approx(45.0)
    assert bound(10_001, 45) < bound(20_000, 45) < bound(10**6, 45) < 70
    assert SourceResidual("s", docs=5, confidence=0.95).per_10k_upper == float("inf")


def test_a_sample_too_small_to_bound_anything_is_refused():
    with pytest.raises(ValueError, match="at least 100"):
        ScrubConfig(residual_sample=50)


def test_an_id_that_is_not_a_sha256_is_refused():
    with pytest.raises(ValueError, match="sha256"):
        in_sample(pl.Series(["abc"]), 0.5)
    assert in_sample(pl.Series(["abc"]), 1.0).all()  # read whole: nothing is sampled by id


def test_counts_clustered_in_a_few_texts_widen_the_bound():
    spread = SourceResidual("s", docs=1_000_000, confidence=0.95)
    spread.add([Counter()] * 9_900 + [Counter({"PERSON": 1})] * 100)
    clustered = SourceResidual("s", docs=1_000_000, confidence=0.95)
    clustered.add([Counter()] * 9_998 + [Counter({"PERSON": 50})] * 2)
    assert spread.per_10k == clustered.per_10k == pytest.approx(100.0)
    assert clustered.per_10k_upper > 1.5 * spread.per_10k_upper


def _source(tmp_path, n: int) -> dict:
    texts = [f"reach me at user{i}@example.com please" for i in range(n)]
    records = pl.DataFrame(
        {
            "record_id": _ids(n),
            "source_id": ["forum"] * n,
            "source_key": [f"forum.jsonl:{i}" for i in range(n)],
            "kind": [TEXT] * n,
            "text": texts,
            "image_path": [None] * n,
        },
        schema=RECORD_SCHEMA,
    )
    write_stage(records, tmp_path, "scrub", "forum")
    return {"forum": stage_path(tmp_path, "scrub", "forum"), "gone": tmp_path / "gone.parquet"}


@pytest.mark.parametrize("sample", [0, 100])
def test_rescan_reads_every_text_or_a_sample(tmp_path, sample):
    config = ScrubConfig(
        ner=False, entities=["EMAIL_ADDRESS"], workers=1, residual_sample=sample, part_records=70
    )
    found = rescan(_source(tmp_path, 300), config)
    (forum,) = found.sources
    assert forum.docs == 300
    if sample:
        assert 60 < forum.scanned < 140
        assert forum.per_10k_upper > forum.per_10k == 10_000.0
    else:
        assert forum.scanned == 300 and forum.per_10k_upper == forum.per_10k == 10_000.0
    assert found.found == {"EMAIL_ADDRESS": forum.scanned}


def test_the_gate_reads_the_bound_and_an_older_run_its_whole_rate(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    counts = {"stage": "scrub", "source_id": "forum", "records_in": 1, "records_out": 1}
    ledger.append("stage_counts", [counts | {"dropped": 0}], "old")
    old = {"source_id": "forum", "entity_type": "PERSON", "residual": 3, "docs": 600}
    ledger.append("pii_residuals", [old | {"per_10k": 50.0}], "old")
    assert pii_residual_facts(ledger)["max_per_10k"] == pytest.approx(50.0)
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"))
    con.execute("DROP TABLE pii_rescans")  # a ledger last written before the table existed
    con.close()
    assert pii_residual_facts(Ledger(tmp_path / "ledger.duckdb"))["sampled"] is False
    ledger.append("stage_counts", [counts | {"dropped": 0}], "new")
    rows = [
        {"source_id": s, "docs": 10**6, "scanned": 10**4, "residual": 1, "per_10k": 1.0}
        | {"per_10k_upper": upper, "confidence": 0.95}
        for s, upper in (("forum", 4.7), ("wiki", 9.0))
    ]
    ledger.append("pii_rescans", rows, "new")
    facts = pii_residual_facts(ledger)
    assert (facts["max_per_10k"], facts["source_id"]) == (9.0, "wiki")
    assert facts["sampled"] is True and facts["confidence"] == 0.95
