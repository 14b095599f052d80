import polars as pl
import pytest

from resources.core.records import empty_records
from resources.core.storage import (
    atomic_path,
    data_version,
    json_sha256,
    pairs_sha256,
    read_stage,
    stage_data_version,
    write_stage,
    write_text,
)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text("old", tmp_path / "out" / "file.txt")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_write_stage_returns_the_artifact_row(tmp_path):
    records = empty_records().vstack(
        pl.DataFrame(
            {
                "record_id": ["r"],
                "source_id": ["s"],
                "source_key": ["k"],
                "kind": ["text"],
                "text": ["hello"],
                "image_path": [None],
            },
            schema=empty_records().schema,
        )
    )
    art = write_stage(records, tmp_path, "ingest", "s")
    row = art.row()
    assert (row["stage"], row["source_id"], row["records"]) == ("ingest", "s", 1)
    assert row["size_bytes"] == art.path.stat().st_size
    assert read_stage(tmp_path, "ingest").equals(records)
    assert stage_data_version(tmp_path, "ingest", ["s"]) == data_version({"s": art.sha256})
    assert stage_data_version(tmp_path, "ingest", ["s", "gone"]) != data_version({"s": art.sha256})


def test_digests_are_canonical():
    assert json_sha256({"b": 1, "a": [1, 2]}) == json_sha256({"a": [1, 2], "b": 1})
    assert pairs_sha256([("b", "2"), ("a", "1")]) == pairs_sha256([("a", "1"), ("b", "2")])
    assert pairs_sha256([("a", "1")]) != pairs_sha256([("a", "2")])
