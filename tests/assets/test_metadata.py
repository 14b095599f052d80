"""What the UI shows: rounded figures, Markdown tables, placeholders that survive the renderer."""

import dagster as dg
from markdown_it import MarkdownIt

from assets.metadata import (
    counts,
    escape_md,
    figures,
    listing,
    shown_check,
    significant,
    table,
)
from tests.assets import markdown

RENDER = MarkdownIt("commonmark", {"html": True}).enable("table")


def test_significant_keeps_three_digits():
    assert significant(498.3393461606965) == 498.0
    assert significant(0.012345678) == 0.0123
    assert significant(12345.6) == 12300.0
    assert significant(-7.98765) == -7.99
    assert significant(0.0) == 0.0
    assert significant(1e-5) == 1e-5


def test_figures_round_floats_and_leave_the_rest():
    rounded = figures(
        {"rate": 0.123456, "n": 7, "ok": True, "f": dg.MetadataValue.float(2.71828), "s": "x"}
    )
    assert rounded["rate"] == 0.123 and rounded["n"] == 7 and rounded["ok"] is True
    assert rounded["f"].value == 2.72 and rounded["s"] == "x"


def test_a_placeholder_is_text_after_rendering_not_a_tag():
    doc = "writes data/ingest/<source>.parquet"
    assert "<source>" in RENDER.render(doc)  # raw: an HTML tag the UI's renderer drops
    escaped = RENDER.render(escape_md(doc))
    assert "&lt;source&gt;" in escaped and "<source>" not in escaped


def test_tables_render_with_right_aligned_numbers_and_read_back():
    value = counts({"duplicate_near": 2, "duplicate_exact": 5}, "reason", "records")
    html = RENDER.render(value.value)
    assert "<table>" in html and 'style="text-align:right"' in html
    assert list(markdown.counts(value).items()) == [("duplicate_exact", 5), ("duplicate_near", 2)]
    cells = markdown.rows(table(["a", "b"], [["x|y", 0.123456], ["<EMAIL>", None]]))
    assert cells == [{"a": "x\\|y", "b": "0.123"}, {"a": "\\<EMAIL\\>", "b": "–"}]
    assert markdown.rows(table(["a"], [])) == []


def test_listing_counts_what_it_leaves_out():
    assert listing([]) == "none"
    assert listing(["a", "b"]) == "a, b"
    assert listing(range(5), limit=2) == "0, 1 (+3 more)"


def test_shown_check_keeps_the_verdict_and_rounds():
    result = dg.AssetCheckResult(
        check_name="c",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description="at most <limit>",
        metadata={"auc": 0.612345},
    )
    shown = shown_check(result)
    assert (shown.passed, shown.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert shown.description == "at most \\<limit\\>"
    assert shown.metadata["auc"].value == 0.612
