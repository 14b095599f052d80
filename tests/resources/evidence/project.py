"""A released copy of the tiny trained project, with the ledger rows a full run would add for
the evidence to show (ingest and dedup counts, drops, PII, incidents, a detector benchmark),
including rows that must not count: a superseded ingest run and a run that failed.

The figures injected here are the inputs the tests check the evidence against."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.params import load_params
from resources.core.ledger import Ledger

DETECTOR = "assay scrub (2 workers)"
EVAL_SET = "held-out:faker:de_DE,fr_FR:templates=9:docs=300:seed=2000"
SECOND_SET = "held-out:mimesis:de_DE:templates=9:docs=200:seed=3000"
RECALL = {"EMAIL_ADDRESS": (100, 0.97, 0.99), "PERSON": (80, 0.9125, 0.95)}
SECOND_RECALL = {"PERSON": (60, 0.85, 0.9)}
"""entity -> (support, recall, precision) of the latest bench run of assay's detector."""
PII = {"EMAIL_ADDRESS": (7, 6), "PERSON": (11, 9)}
"""entity -> (entities, records) of the live scrub run."""
DROPS = {("ingest", "malformed"): 5, ("ingest", "encoding"): 3, ("dedup", "duplicate_exact"): 2}
INCIDENTS = {("demo", "v1", "new"): 2, ("ncmec", "v2", "retroactive"): 1}
RECORDS_IN = 70 + 30
OWNER = "community-team@example.org"


def add_pipeline_rows(ledger: Ledger) -> None:
    """Rows as ingest, dedup, scrub, screening and bench/pii.py would write them."""
    ledger.append(
        "sources",
        [
            {"source_id": s, "uri": f"https://example.org/{s}", "license": "CC-BY-4.0",
             "consent": "opt_in", "owner": OWNER, "retrieved_at": "2026-01-01T00:00:00Z"}
            for s in ("forum", "wiki")
        ],
        "ingest-1",
    )  # fmt: skip
    keys = ("stage", "source_id", "records_in", "records_out", "dropped", "run_id")
    superseded = ("ingest", "forum", 52, 50, 2, "ingest-0")  # ingest-1 re-read the source
    ledger.append("stage_counts", [dict(zip(keys, superseded, strict=True))])
    ledger.append("drops", [_drop("ingest", "too_large", "ingest-0", i) for i in range(2)])
    counts = [
        ("ingest", "forum", 70, 62, 8, "ingest-1"),
        ("ingest", "wiki", 30, 30, 0, "ingest-1"),
        ("dedup", "forum", 62, 60, 2, "dedup-1"),
        ("dedup", "wiki", 30, 30, 0, "dedup-1"),
    ]
    ledger.append("stage_counts", [dict(zip(keys, c, strict=True)) for c in counts])
    rows = []
    for (stage, reason), n in DROPS.items():
        rows += [_drop(stage, reason, f"{stage}-1", i) for i in range(n)]
    ledger.append("drops", rows)
    ledger.append(
        "pii_counts",
        [{"source_id": "forum", "entity_type": e, "entities": n, "records": r}
         for e, (n, r) in PII.items()],
        "setup-scrub",
    )  # fmt: skip
    incidents = []
    for (name, version, kind), n in INCIDENTS.items():
        incidents += [
            {"incident_id": f"inc-{name}-{i}", "kind": kind, "record_id": f"{name}{i:062d}",
             "source_id": "forum", "source_key": f"secret-key-{name}-{i}", "list_name": name,
             "list_version": version}
            for i in range(n)
        ]  # fmt: skip
    ledger.append("incidents", incidents, "ingest-1")
    _add_benchmarks(ledger)
    _add_failed_scrub(ledger)


def _drop(stage: str, reason: str, run_id: str, i: int) -> dict:
    key = f"secret-key-{stage}-{reason}-{i}"
    return {"stage": stage, "record_id": f"{stage}{reason}{i}", "source_id": "forum",
            "source_key": key, "reason": reason, "run_id": run_id}  # fmt: skip


def _add_benchmarks(ledger: Ledger) -> None:
    def row(
        detector: str,
        entity: str,
        support: int,
        recall: float,
        precision: float,
        eval_set: str = EVAL_SET,
    ) -> dict:
        return {"detector": detector, "entity_type": entity, "support": support,
                "predicted": support, "recall": recall, "precision": precision, "docs": 300,
                "eval_set": eval_set}  # fmt: skip

    ledger.append("detector_benchmarks", [row(DETECTOR, "PERSON", 80, 0.5, 0.5)], "bench-old")
    latest = [row(DETECTOR, e, *figures) for e, figures in RECALL.items()]
    latest += [row(DETECTOR, e, *figures, SECOND_SET) for e, figures in SECOND_RECALL.items()]
    latest.append(row("presidio defaults", "PERSON", 80, 0.42, 0.6))
    ledger.append("detector_benchmarks", latest, "bench-new")


def _add_failed_scrub(ledger: Ledger) -> None:
    """A scrub run that died after writing counts: its figures must not show."""
    row = {"stage": "scrub", "source_id": "forum", "records_in": 60, "records_out": 1,
           "dropped": 59}  # fmt: skip
    ledger.append("stage_counts", [row], "scrub-dead")
    pii = {"source_id": "forum", "entity_type": "PERSON", "entities": 1000, "records": 60}
    ledger.append("pii_counts", [pii], "scrub-dead")
    ledger.append("failed_runs", [{"run_id": "scrub-dead", "job": "x", "detail": "gone"}])


def release(params_file: Path, *extra: str) -> dict:
    import json

    args = ["release", "--params", str(params_file), "--json", *extra]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    return json.loads(done.output) | {"exit_code": done.exit_code}


def build_released(template: Path, dest: Path) -> tuple[Path, dict]:
    """Copy the trained template, add the pipeline rows, release; (params.yaml, CLI output)."""
    shutil.copytree(template.parent, dest)
    params_file = dest / "params.yaml"
    add_pipeline_rows(Ledger(load_params(params_file).ledger_path))
    return params_file, release(params_file)
