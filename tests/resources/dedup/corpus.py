"""Small corpora for dedup tests: sources, documents, and what ingest would have written."""

from pathlib import Path

import numpy as np
import polars as pl

from resources.core.records import IMAGE, RECORD_SCHEMA, TEXT, record_id, text_record_id
from resources.core.storage import write_stage

VOCAB = [f"word{i}" for i in range(4000)]


def doc(seed: int, n: int = 80) -> str:
    """A random text of n words, different for every seed."""
    return " ".join(np.random.default_rng(seed).choice(VOCAB, n))


def source(sid: str, license: str, consent: str, when: str = "2025-01-01T00:00:00Z") -> dict:
    """A params.yaml source entry for a jsonl folder raw/<sid>."""
    return {
        "id": sid,
        "path": f"raw/{sid}",
        "format": "jsonl",
        "license": license,
        "consent": consent,
        "uri": f"https://example.org/{sid}",
        "retrieved_at": when,
        "owner": "team@example.org",
    }


def ingested(root: Path, source_id: str, rows: list[tuple[str, str]]) -> None:
    """Write what ingest would have: (source_key, text) rows, or image paths for keys img:*."""
    frame = pl.DataFrame(
        {
            "record_id": [
                record_id(IMAGE, Path(v).read_bytes()) if k.startswith("img") else text_record_id(v)
                for k, v in rows
            ],
            "source_id": [source_id] * len(rows),
            "source_key": [k for k, _ in rows],
            "kind": [IMAGE if k.startswith("img") else TEXT for k, _ in rows],
            "text": [None if k.startswith("img") else v for k, v in rows],
            "image_path": [v if k.startswith("img") else None for k, v in rows],
        },
        schema=RECORD_SCHEMA,
    )
    write_stage(frame, root / "data", "ingest", source_id)
