import itertools

import dagster as dg

from pipelines.definitions import build_defs


def test_definitions_load_and_wire_the_graph(project):
    defs = build_defs(project)
    graph = defs.resolve_asset_graph()
    ingest = dg.AssetKey("ingest")
    assert ingest in graph.get_all_asset_keys()
    assert graph.get(ingest).partitions_def.get_partition_keys() == [
        "forum",
        "tickets",
        "wiki",
        "essays",
        "scraped",
        "photos",
    ]
    checks = {key.name for key in graph.asset_check_keys if key.asset_key == ingest}
    assert "conservation" in checks
    assert defs.resolve_sensor_def("source_change_sensor")
    automation = defs.resolve_sensor_def("assay_automation")
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("nightly_full_run").cron_schedule == "0 3 * * *"
    assert defs.resolve_schedule_def("nightly_rescreen").cron_schedule == "0 4 * * *"
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version, f"{key} has no code_version"


def test_stages_chain_in_order_and_follow_their_upstream(project):
    graph = build_defs(project).resolve_asset_graph()
    chain = ["ingest", "dedup", "scrub", "train", "release"]
    for upstream, stage in itertools.pairwise(chain):
        node = graph.get(dg.AssetKey(stage))
        assert node.parent_keys == {dg.AssetKey(upstream)}, stage
        assert node.automation_condition is not None, stage
    defs = build_defs(project)
    pools = {
        key.to_user_string(): defs.get_assets_def(key).op.pool for key in graph.get_all_asset_keys()
    }
    assert set(pools.values()) == {"ledger"}


def test_rescreen_is_a_job_of_its_own_run_by_the_sensor_and_the_nightly_schedule(project):
    defs = build_defs(project)
    graph = defs.resolve_asset_graph()
    assert "screen" not in {k.to_user_string() for k in graph.get_all_asset_keys()}
    rescreen = defs.resolve_job_def("rescreen_job")
    assert {k.to_user_string() for k in rescreen.asset_layer.executable_asset_keys} == {"rescreen"}
    curate = defs.resolve_job_def("curate_job")
    assert {k.to_user_string() for k in curate.asset_layer.executable_asset_keys} == {
        "dedup",
        "scrub",
        "train",
        "release",
    }
    assert defs.resolve_sensor_def("hashlist_sensor").job_name == "rescreen_job"
    assert defs.resolve_schedule_def("nightly_rescreen").job_name == "rescreen_job"
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("ingest")}
    assert "no_listed_content" in checks
