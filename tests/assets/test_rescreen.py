import dagster as dg
import polars as pl
import yaml

from pipelines.definitions import build_defs
from pipelines.params import load_params
from resources.core.ledger import Ledger
from resources.core.normalize import normalized_sha256
from resources.core.storage import read_stage
from tests.assets import markdown
from tests.conftest import ingest_all
from tests.resources.core.lineage_schema import validate_event
from tests.resources.core.test_lineage import read_events


def test_the_rescreen_job_purges_and_announces_the_purged_ingest_partition(project, dagster_home):
    params = load_params(project)
    ingest_all(params)
    wiki = read_stage(params.data_dir, "ingest", ["wiki"]).row(0, named=True)
    (project.parent / "data" / "hashlists" / "later.csv").write_text(
        f"hash,type\n{normalized_sha256(wiki['text'])},sha256_text\n"
    )
    result = (
        build_defs(project)
        .resolve_job_def("rescreen_job")
        .execute_in_process(instance=dg.DagsterInstance.get())
    )
    assert result.success
    events = result.get_asset_materialization_events()
    announced = {(e.asset_key.path[-1], e.partition) for e in events}
    assert announced == {("rescreen", None), ("ingest", "wiki")}
    rescreen = next(e for e in events if e.asset_key.path[-1] == "rescreen").materialization
    assert markdown.rows(rescreen.metadata["purged_records"]) == [{"record_id": wiki["record_id"]}]
    after = read_stage(params.data_dir, "ingest", ["wiki"])
    assert wiki["record_id"] not in after["record_id"].to_list()
    ledger = Ledger(params.ledger_path)
    incidents = ledger.query(
        "SELECT kind, source_id, source_key FROM incidents WHERE kind = ?", ["retroactive"]
    )
    assert incidents.select("source_id", "source_key").rows() == [("wiki", wiki["source_key"])]
    assert ledger.query("SELECT count(*) FROM purges").item() == 1
    assert pl.read_parquet(params.resolve(params.screen.hash_cache)).height > 0

    # Its lineage: the lists and the hash cache in, the purged file out, with its owner.
    events = read_events(params.resolve(params.lineage.events))
    ends = [e for e in events if e["job"]["name"] == "rescreen" and e["eventType"] != "START"]
    (complete,) = ends
    validate_event(complete)
    assert complete["eventType"] == "COMPLETE"
    assert {d["name"] for d in complete["inputs"]} == {
        str(params.resolve(params.screen.hashlists_dir)),
        str(params.resolve(params.screen.hash_cache)),
    }
    (purged,) = complete["outputs"]
    assert purged["name"] == str(params.data_dir / "ingest" / "wiki.parquet")
    assert purged["outputFacets"]["outputStatistics"]["rowCount"] == after.height
    owner = params.source("wiki").owner
    assert purged["facets"]["ownership"]["owners"] == [{"name": owner, "type": "MAINTAINER"}]


def test_a_purge_makes_eager_automation_rerun_the_stages_after_ingest(project, dagster_home):
    raw = yaml.safe_load(project.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["id"] == "wiki"]
    project.write_text(yaml.safe_dump(raw))
    defs = build_defs(project)
    instance = dg.DagsterInstance.get()
    ingest = defs.resolve_job_def("ingest_job")
    assert ingest.execute_in_process(partition_key="wiki", instance=instance).success
    dedup = dg.AssetKey("dedup")
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert quiet.get_num_requested(dedup) == 0  # nothing changed since the last tick

    params = load_params(project)
    wiki = read_stage(params.data_dir, "ingest", ["wiki"]).row(0, named=True)
    (project.parent / "data" / "hashlists" / "later.csv").write_text(
        f"hash,type\n{normalized_sha256(wiki['text'])},sha256_text\n"
    )
    rescreen = defs.resolve_job_def("rescreen_job")
    assert rescreen.execute_in_process(instance=instance).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    assert after.get_num_requested(dedup) == 1
