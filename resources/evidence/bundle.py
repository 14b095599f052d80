"""Where the evidence goes: a release's evidence (written into the release directory before it
is signed, so model.sig covers it) and the ledger's evidence (`assay report`).

A release directory gains:

    croissant.json                      Croissant 1.1 + RAI of training_set.jsonl (PASSED)
    evidence/dataset_card.md            Hugging Face dataset card (PASSED)
    evidence/model_card.md              Hugging Face model card (PASSED)
    evidence/transparency_report.json   the transparency report, aggregates only
    evidence/transparency_report.md
    evidence/auditor.html               the auditor's page, self-contained

A blocked release has no model and no training set: it gets the report and the page, which say
why it was blocked.
"""

from __future__ import annotations

import json
from pathlib import Path

from resources.core.ledger import Ledger
from resources.core.storage import file_sha256, write_text
from resources.evidence import cards, croissant, page, report
from resources.evidence.facts import gather
from resources.release.policy import json_safe

CROISSANT = "croissant.json"
MANIFEST = croissant.MANIFEST
REPORT_JSON = "transparency_report.json"
REPORT_MD = "transparency_report.md"
PAGE = "auditor.html"
DATASET_CARD = "dataset_card.md"
MODEL_CARD = "model_card.md"
EVIDENCE_DIR = "evidence"
AUDITOR_PAGE = f"{EVIDENCE_DIR}/{PAGE}"
"""The auditor's page of a release, relative to the release directory."""


def release_evidence(ledger: Ledger, release_dir: Path) -> dict:
    """The figures of the release in ``release_dir``, from the ledger up to its signed head.

    Reads the gate's facts, data, policy and verdict the release holds; the same ledger gives
    the same figures, however much it has grown since.
    """
    policy = release_dir / "policy"
    verdict = _read_json(policy / "verdict.json")
    gate = {
        "facts": _read_json(policy / "facts.json"),
        "data": _read_json(policy / "data.json"),
        "policy": (policy / "release.rego").read_text(encoding="utf-8"),
    }
    return gather(ledger, gate, verdict, "release", upto=verdict["ledger_head"]["seq"])


def ledger_evidence(ledger: Ledger, gate: dict, status: str, violations: list[dict]) -> dict:
    """The figures of the ledger as it is, with the gate's decision on it now (``gate``: the
    facts, data and policy text the gate evaluated; ``status``/``violations``: its verdict)."""
    return gather(ledger, gate, {"status": status, "violations": violations}, "ledger")


def write_release_evidence(ledger: Ledger, release_dir: Path) -> dict[str, Path]:
    """Write the release's evidence into ``release_dir``; returns name -> path."""
    evidence = release_evidence(ledger, release_dir)
    written = write_report(evidence, release_dir / EVIDENCE_DIR)
    manifest = release_dir / MANIFEST
    if manifest.exists():  # PASSED: a training set was released, so it can be described
        evidence_dir = release_dir / EVIDENCE_DIR
        written["dataset_card"] = write_text(
            str(cards.dataset_card(evidence)), evidence_dir / DATASET_CARD
        )
        written["model_card"] = write_text(
            str(cards.model_card(evidence)), evidence_dir / MODEL_CARD
        )
        document = croissant.croissant(evidence, file_sha256(manifest), release_dir.name + "/")
        written["croissant"] = write_text(_dumps(document), release_dir / CROISSANT)
    return written


def write_report(evidence: dict, out_dir: Path) -> dict[str, Path]:
    """The transparency report (JSON and Markdown) and the auditor's page, into ``out_dir``."""
    return {
        "report_json": write_text(_dumps(report.document(evidence)), out_dir / REPORT_JSON),
        "report_markdown": write_text(report.markdown(evidence), out_dir / REPORT_MD),
        "auditor_page": write_text(page.render(evidence), out_dir / PAGE),
    }


def _dumps(value: object) -> str:
    return json.dumps(json_safe(value), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
