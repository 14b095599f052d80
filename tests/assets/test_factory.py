"""stage_asset(): what every stage asset gets from the factory."""

import dagster as dg

from assets.factory import LEDGER_POOL, StageResult, StageRun, owners, stage_asset
from pipelines.definitions import build_defs
from pipelines.params import load_params
from pipelines.resource import AssayResource


def test_every_stage_asset_shares_pool_owners_and_descriptions(project):
    params = load_params(project)
    defs = build_defs(project)
    graph = defs.resolve_asset_graph()
    assert owners(params) == sorted({s.owner for s in params.sources})
    for key in graph.get_all_asset_keys():
        asset = defs.get_assets_def(key)
        assert asset.op.pool == LEDGER_POOL, key
        assert asset.owners_by_key[key] == owners(params), key
        assert asset.descriptions_by_key[key], key
        for spec in asset.check_specs:
            assert spec.description, (key, spec.name)


def test_the_factory_adds_conservation_row_count_and_data_version(project):
    params = load_params(project)
    seen = {}

    @stage_asset(params, name="probe", upstream=None, code_version="probe-1")
    def probe(stage: StageRun) -> StageResult:
        """A stage that counts nothing: its conservation check reads an empty ledger."""
        seen["run_id"] = stage.run_id
        return StageResult(metadata={"n": 1}, data_version="v1", row_count=7)

    result = dg.materialize([probe], resources={"assay": AssayResource(params_path=str(project))})
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/row_count"].value == 7 and meta["n"].value == 1
    event = result.get_asset_materialization_events()[0].materialization
    assert event.tags["dagster/data_version"] == "v1"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"conservation": True}
    assert seen["run_id"] == result.run_id
