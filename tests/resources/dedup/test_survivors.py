from datetime import UTC, datetime

import polars as pl
import pytest

from resources.dedup.survivors import survivor_rank

ALLOWED_LICENSES = ["CC0-1.0", "CC-BY-4.0"]
ALLOWED_CONSENT = ["opt_in", "public_domain"]


def sources(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "source_id": pl.String,
            "license": pl.String,
            "consent": pl.String,
            "retrieved_at": pl.Datetime("us", "UTC"),
            "priority": pl.Int64,
        },
        orient="row",
    )


def records(*source_ids: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_id": list(source_ids), "source_key": [f"k{i}" for i in range(len(source_ids))]}
    )


def rank(recs: pl.DataFrame, srcs: pl.DataFrame, order=("policy", "retrieved_at", "priority")):
    return survivor_rank(recs, srcs, ALLOWED_LICENSES, ALLOWED_CONSENT, order).tolist()


EARLY, LATE = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


def test_allowed_license_beats_earlier_retrieval():
    srcs = sources(
        ("old_unlicensed", "LicenseRef-Unknown", "opt_in", EARLY, 9),
        ("new_licensed", "CC0-1.0", "opt_in", LATE, 0),
    )
    assert rank(records("old_unlicensed", "new_licensed"), srcs) == [1, 0]


def test_consent_counts_like_license():
    srcs = sources(
        ("no_consent", "CC0-1.0", "none", EARLY, 0),
        ("consented", "CC0-1.0", "opt_in", LATE, 0),
        ("neither", "Proprietary", "none", EARLY, 0),
    )
    assert rank(records("no_consent", "consented", "neither"), srcs) == [1, 0, 2]


def test_earliest_retrieval_then_priority():
    srcs = sources(
        ("late", "CC0-1.0", "opt_in", LATE, 5),
        ("early", "CC0-1.0", "opt_in", EARLY, 0),
        ("early_high", "CC0-1.0", "opt_in", EARLY, 3),
        ("undated", "CC0-1.0", "opt_in", None, 9),
    )
    assert rank(records("late", "early", "early_high", "undated"), srcs) == [2, 1, 0, 3]


def test_order_is_configurable():
    srcs = sources(
        ("late_high", "CC0-1.0", "opt_in", LATE, 5),
        ("early_low", "CC0-1.0", "opt_in", EARLY, 1),
    )
    recs = records("late_high", "early_low")
    assert rank(recs, srcs) == [1, 0]
    assert rank(recs, srcs, order=("priority", "retrieved_at")) == [0, 1]


def test_equal_provenance_shares_a_rank():
    srcs = sources(
        ("s", "CC0-1.0", "opt_in", EARLY, 0),
        ("twin", "CC0-1.0", "opt_in", EARLY, 0),
        ("later", "CC0-1.0", "opt_in", LATE, 0),
    )
    assert rank(records("s", "later", "s", "twin"), srcs) == [0, 1, 0, 0]


def test_unknown_criterion_and_undeclared_source_are_errors():
    srcs = sources(("s", "CC0-1.0", "opt_in", EARLY, 0))
    with pytest.raises(ValueError, match="unknown survivor criteria"):
        rank(records("s"), srcs, order=("size",))
    with pytest.raises(ValueError, match="undeclared"):
        rank(records("other"), srcs)
