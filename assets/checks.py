"""Checks every stage shares: conservation, read back from the ledger and the stage's files."""

import dagster as dg
import polars as pl

from resources.core.ledger import Ledger
from resources.core.storage import stage_path


def conservation(
    ledger: Ledger, stage: str, run_id: str, data_dir: str, source_ids: list[str]
) -> dg.AssetCheckResult:
    """Per source: in = out + dropped, the ledger holds a drop for each, the file holds out."""
    counts = ledger.query(
        "SELECT c.source_id, c.records_in, c.records_out, c.dropped,"
        " (SELECT count(*) FROM drops d WHERE d.stage = c.stage AND d.run_id = c.run_id"
        "  AND d.source_id = c.source_id) AS drop_rows"
        " FROM stage_counts c WHERE c.stage = ? AND c.run_id = ?",
        [stage, run_id],
    )
    rows = {r["source_id"]: r for r in counts.to_dicts()}
    problems = []
    for source_id in source_ids:
        row = rows.get(source_id)
        if row is None:
            problems.append(f"{source_id}: no stage count in the ledger")
            continue
        path = stage_path(data_dir, stage, source_id)
        on_disk = pl.scan_parquet(path).select(pl.len()).collect().item() if path.exists() else 0
        if row["records_in"] != row["records_out"] + row["dropped"]:
            problems.append(f"{source_id}: in {row['records_in']} != out + dropped")
        if row["drop_rows"] != row["dropped"]:
            problems.append(f"{source_id}: {row['dropped']} dropped, {row['drop_rows']} reasons")
        if on_disk != row["records_out"]:
            problems.append(f"{source_id}: {row['records_out']} out, {on_disk} in {path.name}")
    return dg.AssetCheckResult(
        check_name="conservation",
        passed=not problems,
        description="records in = records out + records dropped, each drop with a reason",
        metadata={"problems": "\n".join(problems) or "none", "sources": len(source_ids)},
    )
