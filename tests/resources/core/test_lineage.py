"""OpenLineage events: schema-valid, with datasets, sizes, owners and masking column lineage."""

import json
from pathlib import Path

import jsonschema
import polars as pl
import pytest

from resources.core.ledger import Ledger
from resources.core.lineage import (
    LineageEmitter,
    StageJob,
    artifact_datasets,
    path_dataset,
)
from resources.core.records import TEXT, text_record_id
from resources.core.storage import write_stage
from tests.resources.core.lineage_schema import validate_event

OWNERS = {"forum": "community-team@example.org", "wiki": "data-team@example.org"}


def records(texts: list[str], source_id: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "record_id": [text_record_id(t) for t in texts],
            "source_id": [source_id] * len(texts),
            "source_key": [str(i) for i in range(len(texts))],
            "kind": ["text"] * len(texts),
            "text": texts,
            "image_path": [None] * len(texts),
        }
    )


@pytest.fixture
def ledger_with_stages(tmp_path: Path) -> Ledger:
    """dedup wrote forum and wiki in run-1; scrub wrote forum in run-2, one record fewer."""
    ledger = Ledger(tmp_path / "ledger.duckdb")
    data = tmp_path / "data"
    dedup = [
        write_stage(records(["mail a@b.org", "hello", "bye"], "forum"), data, "dedup", "forum"),
        write_stage(records(["a page"], "wiki"), data, "dedup", "wiki"),
    ]
    ledger.append("artifacts", [a.row() for a in dedup], run_id="run-1")
    scrub = write_stage(records(["mail me at <EMAIL>", "hello"], "forum"), data, "scrub", "forum")
    ledger.append("artifacts", [scrub.row()], run_id="run-2")
    return ledger


def stage_job(name: str, masked: frozenset[str] = frozenset()) -> StageJob:
    return StageJob(
        namespace="assay",
        name=name,
        description=f"the {name} stage",
        owners=tuple(sorted(set(OWNERS.values()))),
        dagster_run_id="0190b1b2-0000-7000-8000-000000000001",
        dagster_job="curate_job",
        masked_columns=masked,
    )


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_start_and_complete_are_schema_valid_with_sizes_owners_and_masking(
    ledger_with_stages: Ledger, tmp_path: Path
):
    events_path = tmp_path / "lineage" / "events.jsonl"
    emitter = LineageEmitter(events_path)
    job = stage_job("scrub", frozenset({TEXT}))
    inputs = artifact_datasets(ledger_with_stages, "dedup", OWNERS)
    outputs = artifact_datasets(ledger_with_stages, "scrub", OWNERS, "run-2")
    emitter.start(job, inputs)
    emitter.complete(job, inputs, outputs)

    start, complete = read_events(events_path)
    for event in (start, complete):
        validate_event(event)
        assert event["run"]["runId"] == job.run_id
        assert event["run"]["facets"]["parent"]["run"]["runId"] == job.dagster_run_id
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["outputs"] == []

    by_name = {d["name"]: d for d in complete["inputs"]}
    forum_in = by_name[str(tmp_path / "data" / "dedup" / "forum.parquet")]
    assert forum_in["inputFacets"]["dataQualityMetrics"]["rowCount"] == 3
    size = (tmp_path / "data" / "dedup" / "forum.parquet").stat().st_size
    assert forum_in["inputFacets"]["dataQualityMetrics"]["bytes"] == size
    assert forum_in["facets"]["ownership"]["owners"] == [
        {"name": "community-team@example.org", "type": "MAINTAINER"}
    ]
    schema = {f["name"]: f["type"] for f in forum_in["facets"]["schema"]["fields"]}
    assert schema["text"] == "String" and set(schema) >= {"record_id", "source_id", "text"}

    (out,) = complete["outputs"]
    assert out["name"] == str(tmp_path / "data" / "scrub" / "forum.parquet")
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 2
    lineage = out["facets"]["columnLineage"]
    (text_from,) = lineage["fields"]["text"]["inputFields"]
    assert text_from["name"] == forum_in["name"] and text_from["field"] == "text"
    assert text_from["transformations"] == [
        {
            "type": "DIRECT",
            "subtype": "TRANSFORMATION",
            "description": "PII replaced by the configured operators",
            "masking": True,
        }
    ]
    (id_from,) = lineage["fields"]["record_id"]["inputFields"]
    assert id_from["transformations"] == [{"type": "DIRECT", "subtype": "IDENTITY"}]
    assert {t["subtype"] for f in lineage["dataset"] for t in f["transformations"]} == {"FILTER"}


def test_fail_carries_the_error(ledger_with_stages: Ledger, tmp_path: Path):
    events_path = tmp_path / "events.jsonl"
    job = stage_job("release")
    LineageEmitter(events_path).fail(job, [], RuntimeError("release blocked: epsilon"))
    (event,) = read_events(events_path)
    validate_event(event)
    assert event["eventType"] == "FAIL"
    assert event["run"]["facets"]["errorMessage"]["message"] == (
        "RuntimeError: release blocked: epsilon"
    )


def test_a_source_folder_counts_its_files_bytes(tmp_path: Path):
    folder = tmp_path / "essays"
    folder.mkdir()
    (folder / "a.txt").write_text("one")
    (folder / "b.txt").write_text("three")
    dataset = path_dataset(folder, "essays", {"essays": "data-team@example.org"}, rows=2)
    assert (dataset.size_bytes, dataset.rows, dataset.owners) == (8, 2, ("data-team@example.org",))


def test_the_validator_rejects_a_broken_event(ledger_with_stages: Ledger, tmp_path: Path):
    """The schema check can fail: a facet missing a required field is caught."""
    events_path = tmp_path / "events.jsonl"
    LineageEmitter(events_path).start(stage_job("dedup"), [])
    (event,) = read_events(events_path)
    del event["job"]["facets"]["jobType"]["processingType"]
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)
    event = read_events(events_path)[0]
    event["eventType"] = "STARTED"
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)
