"""The PII detector's measured quality, carried from bench/pii.py into every ledger that uses it.

`python bench/pii.py --save` writes MEASURED: the per-entity rows of one benchmark run on the
held-out sets, and the sha256 of the NER model it ran. The scrub stage copies those rows into
the ledger's detector_benchmarks only when they were measured on the very model it runs (model
builds are bit-identical, so the sha256 decides), once per benchmark run. Another model gets no
figures: the cards then say "not measured" rather than cite a model they were not measured on.
"""

from __future__ import annotations

import json
from pathlib import Path

from resources.core.ledger import Ledger
from resources.core.storage import canonical_json, write_text

MEASURED = Path(__file__).with_name("measured_quality.json")


def save(rows: list[dict], run_id: str, model_sha256: str, path: Path = MEASURED) -> Path:
    """Keep one benchmark run's rows, with the model they were measured on."""
    doc = {"run_id": run_id, "model_sha256": model_sha256, "rows": rows}
    return write_text(canonical_json(doc) + "\n", path)


def record(ledger: Ledger, model_sha256: str, path: Path = MEASURED) -> int:
    """Append the saved rows if they measured this model and are not in the ledger yet."""
    if not path.exists():
        return 0
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc["model_sha256"] != model_sha256:
        return 0
    seen = ledger.query(
        "SELECT count(*) AS n FROM detector_benchmarks WHERE run_id = ?", [doc["run_id"]]
    )
    if seen["n"][0]:
        return 0
    ledger.append("detector_benchmarks", doc["rows"], doc["run_id"])
    return len(doc["rows"])
