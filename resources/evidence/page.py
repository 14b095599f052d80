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

from resources.evidence.report import PRE_TRAINING_STAGES, figure, stage_total, title, totals

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


def _section(sid: str, heading: str, header: list[str], rows: list[list], **extra) -> dict:
    return {"id": sid, "title": heading, "header": header,
            "rows": [[_cell(v) for v in row] for row in rows], **extra}  # fmt: skip


def sections(evidence: dict) -> list[dict]:
    """The tables under the charts: every aggregate the charts draw, and more."""
    ingest = {r["source_id"]: r for r in evidence["stage_counts"] if r["stage"] == "ingest"}
    detector = evidence["pii_detector"]
    out = [
        _section(
            "sources", "Sources", ["source", "license (SPDX)", "consent", "owner", "items read",
                                   "kept by ingest"],
            [[s["source_id"], s["license"], s["consent"], s["owner"],
              ingest.get(s["source_id"], {}).get("records_in"),
              ingest.get(s["source_id"], {}).get("records_out")] for s in evidence["sources"]],
        ),
        _section(
            "stages", "Records through the stages", ["stage", "records in", "records out",
                                                     "dropped"],
            [[s, stage_total(evidence, s, "records_in"), stage_total(evidence, s, "records_out"),
              stage_total(evidence, s, "dropped")] for s in PRE_TRAINING_STAGES
             if stage_total(evidence, s, "records_in") is not None],
        ),
        _section("drops", "Drops by stage and reason", ["stage", "reason", "records"],
                 [[d["stage"], d["reason"], d["records"]] for d in evidence["drops"]]),
        _section("pii", "PII by entity type", ["entity type", "entities", "records holding it"],
                 [[p["entity_type"], p["entities"], p["records"]] for p in evidence["pii"]]),
        _section(
            "detector", "PII detector recall", ["entity type", "support", "recall", "precision"],
            [[e["entity_type"], e["support"], e["recall"], e["precision"]]
             for e in detector["entities"]],
            note=(f"{detector['detector']} on {detector['eval_set']} (run {detector['run_id']})"
                  if detector["measured"] else "Not measured."),
            after=detector["caveats"],
        ),
        _section("incidents", "Incidents by hash list", ["hash list", "version", "kind",
                                                         "incidents"],
                 [[i["list_name"], i["list_version"], i["kind"], i["incidents"]]
                  for i in evidence["incidents"]["by_list"]]),
        _section(
            "privacy", "Privacy audit", ["model", "ε", "MIA AUC", "MIA TPR @1% FPR",
                                         "canary exposure max", "exposure bound",
                                         "attribute advantage", "held-out loss"],
            [[e["model_kind"], e["epsilon"], e["mia_auc"], e["mia_tpr_at_1pct_fpr"],
              e["canary_exposure_max"], e["canary_exposure_bound"], e["attr_advantage"],
              e["heldout_loss"]] for e in evidence["evaluations"]],
        ),
        _section("releases", "Releases", ["release", "status", "training run", "decided",
                                          "revoked"],
                 [[r["release_id"], r["status"], r["training_run_id"], r["decided_at"],
                   r["revoked"]] for r in evidence["releases"]]),
    ]  # fmt: skip
    training = evidence["training"]
    if training:
        out.append(
            _section(
                "training",
                "Training run",
                ["field", "value"],
                [[key, value] for key, value in training.items()],
            )
        )
    return out


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
