import json
from pathlib import Path

import dagster as dg
import yaml

from assets.release import build_release_asset
from pipelines.params import load_params
from pipelines.resource import AssayResource
from resources.core.ledger import Ledger
from tests.assets.test_train import failure_of


def materialize(params_path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_release_asset(load_params(params_path))],
        resources={"assay": AssayResource(params_path=str(params_path))},
        raise_on_error=False,
    )


def test_the_release_asset_releases_and_signs_the_head(release_project):
    result = materialize(release_project)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["status"].value == "PASSED"
    assert Path(meta["auditor_page"].value).name == "auditor.html"
    assert Path(meta["auditor_page"].value).is_file()
    ledger = Ledger(load_params(release_project).ledger_path)
    reasons = ledger.query("SELECT reason FROM checkpoints ORDER BY entry_seq")["reason"]
    assert reasons.to_list() == [f"release {meta['release_id'].value}", "end of release"]
    assert ledger.verify().ok and ledger.verify().checkpoints == 2


def test_a_blocked_release_fails_the_asset_naming_the_rule(release_project):
    raw = yaml.safe_load(release_project.read_text())
    raw["release"]["max_epsilon"] = 1.0
    release_project.write_text(yaml.safe_dump(raw))
    result = materialize(release_project)
    assert not result.success
    failure = failure_of(result)
    assert "blocked: epsilon: epsilon 3.99" in failure
    ledger = Ledger(load_params(release_project).ledger_path)
    (row,) = ledger.query("SELECT status, violations FROM releases").to_dicts()
    assert row["status"] == "FAILED" and json.loads(row["violations"])[0]["rule"] == "epsilon"
