import polars as pl

from resources.dedup.engine import ACCEPTED_SCHEMA
from resources.dedup.signature_store import (
    Manifest,
    SignatureStore,
    plan_run,
    source_digests,
)


def test_round_trip(tmp_path):
    store = SignatureStore(tmp_path / "_signatures")
    empty, manifest = store.load()
    assert manifest is None and empty.columns == list(ACCEPTED_SCHEMA)
    rows = pl.DataFrame(
        {
            "record_id": ["r1"],
            "source_id": ["a"],
            "source_key": ["k"],
            "kind": ["text"],
            "exact_key": ["e"],
            "signature": [b"\x01\x02\x03\x04"],
            "phash": [None],
        },
        schema=ACCEPTED_SCHEMA,
    )
    store.save(rows, Manifest("s1", {"a": "d1"}))
    loaded, manifest = store.load()
    assert loaded.equals(rows)
    assert manifest == Manifest("s1", {"a": "d1"})


def test_source_digest_ignores_row_order_and_sees_changes():
    a = pl.DataFrame(
        {"source_id": ["s", "s", "t"], "source_key": ["1", "2", "1"], "record_id": ["x", "y", "z"]}
    )
    digests = source_digests(a)
    assert source_digests(a.reverse()) == digests
    changed = a.with_columns(
        pl.when(pl.col("source_key") == "2")
        .then(pl.lit("w"))
        .otherwise(pl.col("record_id"))
        .alias("record_id")
    )
    other = source_digests(changed)
    assert other["s"] != digests["s"] and other["t"] == digests["t"]


def test_plan():
    manifest = Manifest("cfg", {"a": "1", "b": "2", "gone": "3"})
    plan = plan_run({"a": "1", "b": "changed", "c": "4"}, manifest, "cfg", incremental=True)
    assert (plan.full, plan.carried, plan.process, plan.removed) == (
        False,
        ["a"],
        ["b", "c"],
        ["gone"],
    )
    assert plan_run({"a": "1"}, manifest, "other", incremental=True).full
    assert plan_run({"a": "1"}, manifest, "cfg", incremental=False).full
    assert plan_run({"a": "1"}, None, "cfg", incremental=True).process == ["a"]
