"""Measured detector figures reach a ledger only for the model they were measured on, once."""

from resources.core.ledger import Ledger
from resources.scrub import measured

ROW = {"detector": "assay scrub (2 workers) ner_model_sha256=aaa", "entity_type": "PERSON",
       "support": 10, "predicted": 10, "precision": 1.0, "recall": 0.9, "docs": 10,
       "eval_set": "held-out:faker:x"}  # fmt: skip


def test_the_measured_model_gets_its_figures_once(tmp_path):
    saved = measured.save([ROW], "bench-pii-1", "aaa", tmp_path / "m.json")
    ledger = Ledger(tmp_path / "ledger.duckdb")
    assert measured.record(ledger, "aaa", saved) == 1
    assert measured.record(ledger, "aaa", saved) == 0
    rows = ledger.query("SELECT run_id, recall FROM detector_benchmarks").rows()
    assert rows == [("bench-pii-1", 0.9)]


def test_another_model_gets_none(tmp_path):
    saved = measured.save([ROW], "bench-pii-1", "aaa", tmp_path / "m.json")
    ledger = Ledger(tmp_path / "ledger.duckdb")
    assert measured.record(ledger, "bbb", saved) == 0
    assert measured.record(ledger, "bbb", tmp_path / "missing.json") == 0
    assert ledger.query("SELECT count(*) AS n FROM detector_benchmarks")["n"][0] == 0
