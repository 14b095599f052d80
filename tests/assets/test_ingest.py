import dagster as dg

from pipelines.definitions import build_defs


def test_ingest_partition_materializes_with_passing_checks(project, dagster_home):
    defs = build_defs(project)
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        partition_key="photos", instance=dg.DagsterInstance.get()
    )
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"conservation", "no_listed_content"}
    assert all(c.passed for c in checks.values())
    materialization = result.get_asset_materialization_events()[0].materialization
    assert materialization.metadata["records_out"].value == 19
    assert materialization.metadata["quarantined"].value == 2


def test_a_hash_list_folder_with_no_list_fails_the_run(project, dagster_home):
    lists = project.parent / "data" / "hashlists"
    (lists / "demo.csv").rename(lists / "demo.CSV")
    result = (
        build_defs(project)
        .resolve_job_def("ingest_job")
        .execute_in_process(
            partition_key="photos", instance=dg.DagsterInstance.get(), raise_on_error=False
        )
    )
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    assert "demo.CSV" in str(error.cause.message if error.cause else error.message)
