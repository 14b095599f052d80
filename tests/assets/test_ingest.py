import dagster as dg

from pipelines.definitions import build_defs


def test_ingest_partition_materializes_with_a_passing_check(project, dagster_home):
    defs = build_defs(project)
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        partition_key="photos", instance=dg.DagsterInstance.get()
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    materialization = result.get_asset_materialization_events()[0].materialization
    assert materialization.metadata["records_out"].value == 21
