"""The auditor's page: one self-contained static HTML file, opened from disk with no server.

Charts are plotly figures with plotly.js inlined once (no CDN, works offline): drops by stage
and reason, PII by entity, incidents over time, epsilon spent against the budget. The gate's
rules are a table with pass/fail. Every figure comes from resources/evidence/facts.py; the
figures are also embedded as JSON (script#evidence) for a reader that wants them exact.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from plotly.offline import get_plotlyjs

from resources.evidence import tables
from resources.evidence.report import title, totals
from resources.evidence.tables import PRE_TRAINING_STAGES, figure

TEMPLATES = Path(__file__).parent / "templates"
CHART_CONFIG = {"responsive": True, "displaylogo": False}
CHART_LAYOUT = {"height": 360, "margin": {"l": 50, "r": 20, "t": 50, "b": 90}}


def tiles(evidence: dict) -> list[tuple[str, str]]:
    """The headline figures, as (label, figure) pairs."""
    t = totals(evidence)
    dp = _dp(evidence)
    pairs = [
        ("items read", t["records_in"]),
        ("sanitized records", t["sanitized_records"]),
        ("records dropped", t["records_dropped"]),
        ("PII entities masked", t["pii_entities"]),
        ("incidents", t["incidents"]),
        ("releases revoked", t["revocations"]),
        ("training records", t["training_records"]),
        ("ε", t["epsilon"]),
        ("δ", t["delta"]),
        ("cumulative ε", t["epsilon_cumulative"]),
        ("MIA AUC", dp.get("mia_auc")),
        ("canary exposure max (bits)", dp.get("canary_exposure_max")),
        ("attribute advantage", dp.get("attr_advantage")),
    ]
    return [(label, figure(value)) for label, value in pairs]


def _dp(evidence: dict) -> dict:
    return next((e for e in evidence["evaluations"] if e["model_kind"] == "dp"), {})


def _chart(fig: go.Figure, div_id: str, title_text: str) -> str:
    fig.update_layout(title=title_text, **CHART_LAYOUT)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=CHART_CONFIG)


def _empty(fig: go.Figure, what: str) -> go.Figure:
    fig.add_annotation(text=f"no {what} in the ledger", showarrow=False, x=0.5, y=0.5,
                       xref="paper", yref="paper")  # fmt: skip
    return fig


def drops_chart(evidence: dict) -> str:
    fig = go.Figure()
    for stage in PRE_TRAINING_STAGES:
        rows = [d for d in evidence["drops"] if d["stage"] == stage]
        if rows:
            fig.add_bar(name=stage, x=[d["reason"] for d in rows], y=[d["records"] for d in rows])
    fig.update_layout(barmode="stack", xaxis_title="reason", yaxis_title="records dropped")
    if not evidence["drops"]:
        _empty(fig, "drops")
    return _chart(fig, "chart-drops", "Drops by stage and reason")


def pii_chart(evidence: dict) -> str:
    pii = evidence["pii"]
    fig = go.Figure(go.Bar(x=[p["entity_type"] for p in pii], y=[p["entities"] for p in pii]))
    fig.update_layout(xaxis_title="entity type", yaxis_title="entities masked")
    if not pii:
        _empty(fig, "PII counts")
    return _chart(fig, "chart-pii", "PII found, by entity type")


def incidents_chart(evidence: dict) -> str:
    days = evidence["incidents"]["by_day"]
    fig = go.Figure()
    for kind in sorted({d["kind"] for d in days}):
        rows = [d for d in days if d["kind"] == kind]
        fig.add_bar(name=kind, x=[d["day"] for d in rows], y=[d["incidents"] for d in rows])
    fig.update_layout(barmode="stack", xaxis_title="day recorded", yaxis_title="incidents")
    fig.update_xaxes(type="category")
    if not days:
        _empty(fig, "incidents")
    return _chart(fig, "chart-incidents", "Incidents over time")


def epsilon_chart(evidence: dict) -> str:
    """Cumulative epsilon per committed training run against its budget and the gate's limit."""
    spent = evidence["privacy_spent"]
    runs = [s["run_id"][:12] for s in spent]
    fig = go.Figure()
    fig.add_bar(name="ε committed", x=runs, y=[s["epsilon_committed"] for s in spent])
    fig.add_scatter(name="ε cumulative", x=runs, y=[s["epsilon_cumulative"] for s in spent],
                    mode="lines+markers")  # fmt: skip
    fig.add_scatter(name="budget", x=runs, y=[s["epsilon_budget"] for s in spent],
                    mode="lines+markers", line={"dash": "dash"})  # fmt: skip
    limit = evidence["gate"]["thresholds"].get("max_epsilon_cumulative")
    if limit is not None and runs:
        fig.add_hline(y=limit, line_dash="dot", annotation_text=f"gate limit {figure(limit)}")
    fig.update_layout(xaxis_title="training run", yaxis_title="ε", xaxis_type="category")
    if not spent:
        _empty(fig, "committed training runs")
    return _chart(fig, "chart-epsilon", "Privacy spent (ε) against the budget")


def _cell(value: object) -> dict:
    return {"text": figure(value), "num": isinstance(value, int | float)}


def _section(sid: str, heading: str, table: tables.Table, **extra: object) -> dict:
    header, rows = table
    return {"id": sid, "title": heading, "header": header,
            "rows": [[_cell(v) for v in row] for row in rows], **extra}  # fmt: skip


def sections(evidence: dict) -> list[dict]:
    """The tables under the charts: every aggregate the charts draw, and more."""
    detector = evidence["pii_detector"]
    note = (
        f"{detector['detector']} on {detector['eval_set']} (run {detector['run_id']})"
        if detector["measured"]
        else "Not measured in this ledger."
    )
    return [
        _section("sources", "Sources", tables.sources(evidence)),
        _section("stages", "Records through the stages", tables.stages(evidence)),
        _section("drops", "Drops by stage and reason", tables.drops(evidence)),
        _section("pii", "PII by entity type", tables.pii(evidence)),
        _section("detector", "PII detector recall", tables.detector(evidence), note=note,
                 after=detector["caveats"]),
        _section("incidents", "Incidents by hash list", tables.incidents(evidence)),
        _section("privacy", "Privacy audit", tables.evaluations(evidence)),
        _section("spent", "Privacy spent", tables.privacy_spent(evidence)),
        _section("releases", "Releases", tables.releases(evidence)),
        _section("revocations", "Revocations", tables.revocations(evidence)),
        _section("training", "Training run", tables.training(evidence)),
    ]  # fmt: skip


def render(evidence: dict) -> str:
    """The page's HTML."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    gate = evidence["gate"]
    rules = [r | {"value": figure(r["value"]), "limit": figure(r["limit"])} for r in gate["rules"]]
    scope_note = (
        "The ledger as it stood when the gate decided this release."
        if evidence["scope"] == "release"
        else "The ledger as it is; the gate's column is how it would decide now."
    )
    return env.get_template("page.html.j2").render(
        title=title(evidence),
        head=evidence["ledger_head"],
        scope_note=scope_note,
        gate=gate | {"rules": rules},
        tiles=tiles(evidence),
        charts=[
            drops_chart(evidence),
            pii_chart(evidence),
            incidents_chart(evidence),
            epsilon_chart(evidence),
        ],
        tables=sections(evidence),
        evidence=evidence,
        plotly_js=get_plotlyjs(),
    )
