"""The auditor's page in a real headless browser (Debian's chromium): it renders offline with no
console errors, draws its four charts, and shows the release's figures."""

import json
from pathlib import Path

from click.testing import CliRunner

from pipelines.cli import cli
from resources.evidence.tables import figure
from tests.resources.evidence.browser import render

CHARTS = 4


def test_the_check_sees_a_broken_page(chromium, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body>ok<script>console.error('bad figure'); undefined_function();</script>"
        "</body></html>"
    )
    rendered = render(chromium, page)
    assert any("bad figure" in e for e in rendered.errors), rendered.errors
    assert any(e.startswith("Uncaught") and "undefined_function" in e for e in rendered.errors)


def test_the_release_page_renders_and_shows_the_releases_figures(chromium, released_template):
    _, output = released_template
    page = Path(output["auditor_page"])
    html = page.read_text(encoding="utf-8")
    assert "<script src" not in html and "<link" not in html  # self-contained: no CDN, no fetch
    rendered = render(chromium, page, plots_expected=CHARTS)
    assert rendered.errors == []
    assert rendered.plots == CHARTS
    report = json.loads((page.parent / "transparency_report.json").read_text())
    totals = report["totals"]
    text = rendered.text
    assert output["release_id"] in text and "Gate: PASSED" in text
    for key in ("records_in", "records_dropped", "pii_entities", "incidents", "training_records",
                "epsilon", "delta", "epsilon_cumulative"):  # fmt: skip
        assert figure(totals[key]) in text, key
    for rule in report["gate"]["rules"]:
        assert f"{rule['rule']}\t{rule['status']}" in text, rule["rule"]
    dp = next(e for e in report["evaluations"] if e["model_kind"] == "dp")
    assert figure(dp["mia_auc"]) in text and figure(dp["canary_exposure_max"]) in text
    for entity in report["pii"]:
        assert f"{entity['entity_type']}\t{entity['entities']}" in text
    for recall in report["pii_detector"]["entities"]:
        assert f"{recall['entity_type']}\t{recall['support']}\t{figure(recall['recall'])}" in text


def test_the_ledger_page_renders(chromium, released_template, tmp_path):
    params_file, _ = released_template
    args = ["report", "--params", str(params_file), "--out", str(tmp_path), "--json"]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    page = Path(json.loads(done.output)["written"]["auditor_page"])
    rendered = render(chromium, page, plots_expected=CHARTS)
    assert rendered.errors == [] and rendered.plots == CHARTS
    assert "the ledger as of entry" in rendered.text
