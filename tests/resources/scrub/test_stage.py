"""The scrub stage in parts: what it writes and ledgers does not depend on the part size."""

from pathlib import Path

import polars as pl

from resources.core.ledger import Ledger
from resources.core.records import IMAGE, RECORD_SCHEMA, TEXT
from resources.core.storage import stage_path, write_stage
from resources.scrub.config import ScrubConfig
from resources.scrub.stage import rescan, scrub_stage

TEXTS = [
    "Please call Ana Novak at (415) 555-0134 about order 1234.",
    "nothing personal in this line at all",
    "Her SSN is 123-45-6789 and her email jane.doe@example.org.",
    "Ship it to Sven Kowalski, 4234 Rue de la Paix, Wavre.",
    "just the weather today",
]


def _upstream(data: Path) -> None:
    for source_id, n in (("alpha", 11), ("beta", 4)):
        rows = [
            {
                "record_id": f"{source_id}-{i}",
                "source_id": source_id,
                "source_key": f"k{i}",
                "kind": IMAGE if i == 3 else TEXT,
                "text": None if i == 3 else TEXTS[i % len(TEXTS)],
                "image_path": "/images/x.png" if i == 3 else None,
            }
            for i in range(n)
        ]
        write_stage(pl.DataFrame(rows, schema=RECORD_SCHEMA), data, "dedup", source_id)


def _scrubbed(tmp_path: Path, part_records: int) -> tuple[dict, dict, object]:
    data = tmp_path / f"parts-{part_records}"
    _upstream(data)
    ledger = Ledger(data / "ledger.duckdb")
    config = ScrubConfig(part_records=part_records, max_entities_per_doc=1, workers=1)
    outcome = scrub_stage(data, ["alpha", "beta", "gamma"], config, ledger, "run-1")
    written = {
        s: pl.read_parquet(stage_path(data, "scrub", s)).sort("record_id")
        for s in ("alpha", "beta")
    }
    tables = {
        t: ledger.query(f"SELECT * EXCLUDE (run_id, entry_seq, row_no, recorded_at) FROM {t}")
        for t in ("drops", "stage_counts", "pii_counts", "pii_record_counts")
    }
    tables = {t: f.sort(f.columns) for t, f in tables.items()}
    residual = rescan(data, ["alpha", "beta"], config)
    return written, tables, (outcome.records_in, outcome.kept, outcome.dropped, residual.found)


def test_parts_of_three_write_and_ledger_what_one_part_does(tmp_path):
    whole_files, whole_tables, whole = _scrubbed(tmp_path, 50_000)
    part_files, part_tables, parts = _scrubbed(tmp_path, 3)
    assert whole == parts
    assert whole[0] == 15 and whole[2] >= 1  # a text over the limit was dropped
    for source_id, frame in whole_files.items():
        assert frame.equals(part_files[source_id]), source_id
    for table, frame in whole_tables.items():
        assert frame.height and frame.equals(part_tables[table]), table
