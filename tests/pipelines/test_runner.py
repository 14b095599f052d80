from pipelines.runner import summary_frame
from resources.core.ledger import Ledger


def _count(stage: str, n: int) -> dict:
    return {"stage": stage, "source_id": "s", "records_in": n, "records_out": n, "dropped": 0}


def test_summary_columns_follow_the_stage_order_not_the_last_run(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    for stage in ("ingest", "dedup", "scrub"):
        ledger.append("stage_counts", [_count(stage, 5)], "run-1")
    ledger.append("stage_counts", [_count("dedup", 4)], "run-2")  # a second run of one stage
    frame = summary_frame(ledger, ["ingest", "dedup", "scrub"])
    assert frame.columns[:5] == ["source_id", "read", "ingest", "dedup", "scrub"]
    assert frame["dedup"].to_list() == [4]
