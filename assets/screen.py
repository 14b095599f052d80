"""screen: known-harmful hash screening; writes the sanitized corpus, data/screen/<src>.parquet."""

import dagster as dg

from assets.checks import conservation
from assets.execution import AFTER_UPSTREAM, LEDGER_POOL
from pipelines.params import Params
from pipelines.resource import AssayResource
from resources.hashlists import DHASH, PHASH
from resources.screen_stage import STAGE, ScreenSettings, screen_output_matches, screen_stage
from resources.storage import read_stage

# The stage screen reads: the PII-scrubbed corpus.
UPSTREAM = "scrub"
CHECKS = [
    dg.AssetCheckSpec("conservation", asset=STAGE, blocking=True),
    dg.AssetCheckSpec(
        "no_listed_content",
        asset=STAGE,
        blocking=True,
        description="No record in the output matches any hash list on disk, and all were hashed",
    ),
]


def settings(params: Params) -> ScreenSettings:
    screen = params.screen
    return ScreenSettings(
        lists_dir=params.resolve(screen.hashlists_dir),
        cache_path=params.resolve(screen.hash_cache),
        max_distance={PHASH: screen.phash_max_distance, DHASH: screen.dhash_max_distance},
        min_minority_bits={DHASH: screen.dhash_min_minority_bits},
    )


def no_listed_content(params: Params, source_ids: list[str]) -> dg.AssetCheckResult:
    matches, unhashable = screen_output_matches(params.data_dir, source_ids, settings(params))
    return dg.AssetCheckResult(
        check_name="no_listed_content",
        passed=matches.is_empty() and unhashable == 0,
        description="nothing in data/screen matches a hash list; every record was hashed",
        metadata={
            "matches": matches.height,
            "unhashable": unhashable,
            "matched_record_ids": "\n".join(sorted(set(matches["record_id"]))) or "none",
        },
    )


@dg.asset(
    name=STAGE,
    deps=[UPSTREAM],
    code_version="screen-1",
    pool=LEDGER_POOL,
    automation_condition=AFTER_UPSTREAM,
    check_specs=CHECKS,
    kinds={"parquet", "duckdb"},
    group_name="curation",
)
def screen(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
    """Drop every record that matches a known-harmful hash list; quarantine hashes, not bytes.

    Matches are dropped as harmful_hash_match (unhashable records as unreadable), recorded as
    screen_matches, quarantine and incident rows; every record ever screened is matched again,
    so a grown list raises retroactive incidents for data earlier runs passed.
    """
    params, ledger = assay.params(), assay.ledger()
    run_id = assay.record_run(context)
    records = read_stage(params.data_dir, UPSTREAM)
    outcome = screen_stage(
        records, params.source_ids, params.data_dir, settings(params), ledger, run_id
    )
    sources = sorted(outcome.artifacts)
    checks = [
        conservation(ledger, STAGE, run_id, str(params.data_dir), sources),
        no_listed_content(params, sources),
    ]
    kinds = outcome.incidents.group_by("kind").len() if outcome.incidents.height else None
    return dg.MaterializeResult(
        metadata={
            "records_in": outcome.records_in,
            "records_out": outcome.records_out,
            "dropped": dg.MetadataValue.json(outcome.dropped),
            "matched_records": outcome.matched_records,
            "rescreened_records": outcome.rescreened,
            "new_incidents": dg.MetadataValue.json(
                {} if kinds is None else dict(zip(kinds["kind"], kinds["len"], strict=True))
            ),
            "hash_lists": dg.MetadataValue.json(
                [{k: h[k] for k in ("name", "version", "sha256", "entries")} for h in outcome.lists]
            ),
            "outputs": dg.MetadataValue.json(
                {s: str(a.path) for s, a in outcome.artifacts.items()}
            ),
        },
        data_version=dg.DataVersion(outcome.data_version),
        check_results=checks,
    )
