import duckdb
import polars as pl

from assets.checks import conservation
from pipelines.params import load_params
from resources.core.ledger import Ledger
from resources.core.storage import stage_path
from tests.conftest import ingest_all


def test_conservation_passes_on_an_honest_ingest(project):
    params = load_params(project)
    ingest_all(params, "run-a")
    result = conservation(
        Ledger(params.ledger_path), "ingest", "run-a", params.data_dir, params.source_ids
    )
    assert result.passed


def test_conservation_fails_when_a_drop_or_a_record_goes_missing(project):
    params = load_params(project)
    ingest_all(params, "run-a")
    ledger = Ledger(params.ledger_path)
    con = duckdb.connect(str(params.ledger_path))
    con.execute("DELETE FROM drops WHERE source_key = 'latin1.txt'")
    con.close()
    path = stage_path(params.data_dir, "ingest", "wiki")
    pl.read_parquet(path).head(5).write_parquet(path)
    result = conservation(ledger, "ingest", "run-a", params.data_dir, params.source_ids)
    assert not result.passed
    problems = result.metadata["problems"].value
    assert "essays: 4 dropped, 3 reasons" in problems  # 2 of them at the door
    assert "wiki: 91 out, 5 in wiki.parquet" in problems
