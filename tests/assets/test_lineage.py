"""Every stage asset emits OpenLineage events around its body, unless params turn them off."""

from pathlib import Path

import dagster as dg
import yaml

from assets.factory import StageResult, StageRun, stage_asset
from pipelines.params import load_params
from pipelines.resource import AssayResource
from resources.core.storage import write_text
from tests.resources.core.lineage_schema import validate_event
from tests.resources.core.test_lineage import read_events


def probe_asset(params_path: Path, fail: bool = False) -> dg.AssetsDefinition:
    params = load_params(params_path)

    @stage_asset(params, name="probe", upstream=None, code_version="probe-1")
    def probe(stage: StageRun) -> StageResult:
        """A stage that writes one file and records it as its artifact."""
        if fail:
            raise RuntimeError("probe failed on purpose")
        out = write_text("one line\n", stage.params.data_dir / "probe" / "out.txt")
        row = {"path": str(out), "sha256": "0" * 64, "size_bytes": 9, "stage": "probe"}
        stage.ledger.append("artifacts", [row | {"source_id": None, "records": 1}], stage.run_id)
        return StageResult(metadata={}, data_version="v1", row_count=1)

    return probe


def materialize(params_path: Path, fail: bool = False) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [probe_asset(params_path, fail)],
        resources={"assay": AssayResource(params_path=str(params_path))},
        raise_on_error=False,
    )


def test_a_stage_emits_start_and_complete_with_its_output(project: Path):
    result = materialize(project)
    assert result.success
    events = read_events(project.parent / "data" / "lineage" / "events.jsonl")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        validate_event(event)
        assert event["job"] == events[0]["job"] and event["job"]["name"] == "probe"
        assert event["run"]["facets"]["parent"]["run"]["runId"] == result.run_id
    (output,) = events[1]["outputs"]
    assert output["name"] == str(project.parent / "data" / "probe" / "out.txt")
    assert output["outputFacets"]["outputStatistics"] == {
        "_producer": output["outputFacets"]["outputStatistics"]["_producer"],
        "_schemaURL": output["outputFacets"]["outputStatistics"]["_schemaURL"],
        "rowCount": 1,
        "size": 9,
    }
    owners = {o["name"] for o in events[0]["job"]["facets"]["ownership"]["owners"]}
    assert owners == {s.owner for s in load_params(project).sources}


def test_a_failing_stage_emits_fail(project: Path):
    result = materialize(project, fail=True)
    assert not result.success
    events = read_events(project.parent / "data" / "lineage" / "events.jsonl")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    validate_event(events[1])
    assert "probe failed on purpose" in events[1]["run"]["facets"]["errorMessage"]["message"]


def test_the_off_switch_writes_no_event(project: Path):
    raw = yaml.safe_load(project.read_text())
    raw["lineage"] = {"enabled": False}
    project.write_text(yaml.safe_dump(raw))
    assert materialize(project).success
    assert not (project.parent / "data" / "lineage").exists()
