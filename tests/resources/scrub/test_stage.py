"""The scrub stage in parts: what it writes and ledgers does not depend on the part size."""

from pathlib import Path

import polars as pl
import pytest

from resources.core.ledger import Ledger
from resources.core.records import IMAGE, RECORD_SCHEMA, TEXT
from resources.core.storage import stage_path, write_stage
from resources.scrub import detection
from resources.scrub.config import ScrubConfig
from resources.scrub.residual import rescan
from resources.scrub.stage import scrub_stage

TEXTS = [
    "Please call Ana Novak at (415) 555-0134 about order 1234.",
    "nothing personal in this line at all",
    "Her SSN is 123-45-6789 and her email jane.doe@example.org.",
    "Ship it to Sven Kowalski, 4234 Rue de la Paix, Wavre.",
    "just the weather today",
]
# An image-only source first, an empty one, texts and images mixed in the others.
SOURCES = {"album": [IMAGE] * 3, "empty": [], "alpha": [TEXT] * 3 + [IMAGE] + [TEXT] * 7}
SOURCES["beta"] = [TEXT, IMAGE, TEXT, TEXT]


def _upstream(data: Path) -> None:
    for source_id, kinds in SOURCES.items():
        rows = [
            {
                "record_id": f"{source_id}-{i}",
                "source_id": source_id,
                "source_key": f"k{i}",
                "kind": kind,
                "text": TEXTS[i % len(TEXTS)] if kind == TEXT else None,
                "image_path": f"/images/{i}.png" if kind == IMAGE else None,
            }
            for i, kind in enumerate(kinds)
        ]
        write_stage(pl.DataFrame(rows, schema=RECORD_SCHEMA), data, "dedup", source_id)


def _config(part_records: int) -> ScrubConfig:
    return ScrubConfig(part_records=part_records, max_entities_per_doc=1, workers=1)


def _scrubbed(tmp_path: Path, part_records: int) -> tuple[dict, dict, tuple]:
    data = tmp_path / f"parts-{part_records}"
    _upstream(data)
    ledger = Ledger(data / "ledger.duckdb")
    config = _config(part_records)
    outcome = scrub_stage(data, [*SOURCES, "missing"], config, ledger, "run-1")
    written = {s: pl.read_parquet(stage_path(data, "scrub", s)) for s in SOURCES}
    tables = {
        t: ledger.query(f"SELECT * EXCLUDE (run_id, entry_seq, row_no, recorded_at) FROM {t}")
        for t in ("drops", "stage_counts", "pii_counts", "pii_record_counts", "artifacts")
    }
    tables = {t: f.drop("path", "sha256", "size_bytes", strict=False) for t, f in tables.items()}
    tables = {t: f.sort(f.columns) for t, f in tables.items()}
    residual = rescan({s: stage_path(data, "scrub", s) for s in SOURCES}, config)
    counts = (outcome.records_in, outcome.kept, outcome.dropped, outcome.counted, residual.found)
    return written, tables, counts


@pytest.mark.parametrize("part_records", [1, 3])
def test_parts_write_and_ledger_what_one_part_does(tmp_path, part_records):
    whole_files, whole_tables, whole = _scrubbed(tmp_path, 50_000)
    part_files, part_tables, parts = _scrubbed(tmp_path, part_records)
    assert whole == parts
    assert whole[0] == 18 and whole[2] >= 1  # a text over the limit was dropped
    for source_id, frame in whole_files.items():
        assert frame.equals(part_files[source_id]), source_id  # the same rows, in order
    ids = whole_files["alpha"]["record_id"].to_list()
    assert ids == sorted(ids, key=lambda r: int(r.split("-")[1])) and "alpha-3" in ids
    for table, frame in whole_tables.items():
        assert frame.height and frame.equals(part_tables[table]), table


def test_a_failure_part_way_leaves_every_output_as_it_was(tmp_path, monkeypatch):
    data = tmp_path / "data"
    _upstream(data)
    ledger = Ledger(data / "ledger.duckdb")
    before = {s: stage_path(data, "scrub", s) for s in SOURCES}
    calls = []

    def scrub_then_fail(texts, config, engine):
        calls.append(len(texts))
        if len(calls) == 3:  # alpha's second part
            raise RuntimeError("worker lost")
        return real(texts, config, engine)

    real = detection.scrub_texts
    monkeypatch.setattr(detection, "scrub_texts", scrub_then_fail)
    with pytest.raises(RuntimeError, match="worker lost"):
        scrub_stage(data, list(SOURCES), _config(4), ledger, "run-1")
    assert not any(path.exists() for path in before.values())  # album was done, not moved in
    assert not list((data / "scrub").glob(".*.tmp"))
    assert ledger.query("SELECT count(*) AS n FROM stage_counts")["n"][0] == 0
