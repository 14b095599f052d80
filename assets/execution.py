"""How every stage runs: one ledger writer at a time, and after its upstream changed."""

import dagster as dg

LEDGER_POOL = "ledger"
"""DuckDB allows one writer per file: every asset that appends to the ledger shares this pool."""

AFTER_UPSTREAM = dg.AutomationCondition.eager()
"""A stage re-runs when its upstream materialized: a sensor's re-ingest flows to the end."""
