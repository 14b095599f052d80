import subprocess
import sys

import dagster as dg
import pytest

from pipelines.params import load_params
from resources.core.ledger import Ledger
from resources.screen.matching import read_hash_cache

RUN_ONE_PARTITION = """
import sys, dagster as dg
from pipelines.definitions import build_defs
defs = build_defs(sys.argv[1])
result = defs.resolve_job_def("ingest_job").execute_in_process(
    partition_key=sys.argv[2], instance=dg.DagsterInstance.get()
)
sys.exit(0 if result.success else 1)
"""


@pytest.mark.e2e
def test_two_runs_at_once_neither_corrupt_nor_lose_anything(project, dagster_home):
    """Two Dagster runs write the ledger at the same time; every row of both lands."""
    dg.DagsterInstance.get()  # create the instance's storage once, not racing in two processes
    runs = [
        subprocess.Popen([sys.executable, "-c", RUN_ONE_PARTITION, str(project), source])
        for source in ("forum", "tickets")
    ]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    ledger = Ledger(load_params(project).ledger_path)
    assert ledger.verify().ok
    counts = ledger.query(
        "SELECT source_id, records_in, records_out, dropped FROM stage_counts ORDER BY source_id"
    ).rows()
    assert counts == [("forum", 255, 251, 4), ("tickets", 122, 120, 2)]  # forum: 1 at the door
    records = ledger.query("SELECT source_id, count(*) FROM records GROUP BY 1 ORDER BY 1").rows()
    assert records == [("forum", 251), ("tickets", 120)]
    # Both ingests added their hashes to the one cache; neither overwrote the other's.
    params = load_params(project)
    cache = read_hash_cache(params.resolve(params.screen.hash_cache))
    ids = ledger.query("SELECT DISTINCT record_id FROM records")["record_id"]
    assert set(ids) <= set(cache["record_id"])
