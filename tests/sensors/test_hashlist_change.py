import json

import dagster as dg

from sensors.hashlist_change import build_hashlist_sensor


def test_a_sidecar_edit_or_a_removed_list_requests_a_rescreen(project):
    lists = project.parent / "data" / "hashlists"
    sensor = build_hashlist_sensor(
        dg.define_asset_job("j", selection=[dg.AssetKey("rescreen")]), str(project)
    )
    cursor = sensor(dg.build_sensor_context()).cursor
    assert json.loads(cursor).keys() == {"demo.csv"}

    (lists / "demo.meta.yaml").write_text("version: '2'\n")
    tick = sensor(dg.build_sensor_context(cursor=cursor))
    assert json.loads(tick.run_requests[0].tags["assay/hashlist_changes"])["changed"] == [
        "demo.csv"
    ]
    key = tick.run_requests[0].run_key

    (lists / "demo.csv").unlink()
    tick = sensor(dg.build_sensor_context(cursor=tick.cursor))
    assert json.loads(tick.run_requests[0].tags["assay/hashlist_changes"])["removed"] == [
        "demo.csv"
    ]
    assert tick.run_requests[0].run_key != key
