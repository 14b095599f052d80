"""screen: known-harmful hash screening; writes the sanitized corpus, data/screen/<src>.parquet."""

import dagster as dg

from assets.factory import StageResult, StageRun, stage_asset
from pipelines.params import Params
from resources.screen.stage import STAGE, UPSTREAM, run, screen_output_matches

NO_LISTED_CONTENT = dg.AssetCheckSpec(
    "no_listed_content",
    asset=STAGE,
    blocking=True,
    description="No record in the output matches any hash list on disk, and all were hashed",
)


def no_listed_content(params: Params, source_ids: list[str]) -> dg.AssetCheckResult:
    matches, unhashable = screen_output_matches(params.screen, params.corpus(), source_ids)
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


def build_screen_asset(params: Params) -> dg.AssetsDefinition:
    @stage_asset(
        params, name=STAGE, upstream=UPSTREAM, code_version="screen-1", checks=[NO_LISTED_CONTENT]
    )
    def screen(stage: StageRun) -> StageResult:
        """Drop every record that matches a known-harmful hash list; quarantine hashes, not bytes.

        Matches are dropped as harmful_hash_match (unhashable records as unreadable), recorded
        as screen_matches, quarantine and incident rows; every record ever screened is matched
        again, so a grown list raises retroactive incidents for data earlier runs passed.
        """
        params = stage.params
        outcome = run(params.screen, stage.ledger, stage.run_id, params.corpus())
        sources = sorted(outcome.artifacts)
        incidents = outcome.incidents
        kinds = incidents.group_by("kind").len() if incidents.height else None
        return StageResult(
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
                    [
                        {k: h[k] for k in ("name", "version", "sha256", "entries")}
                        for h in outcome.lists
                    ]
                ),
                "outputs": dg.MetadataValue.json(
                    {s: str(a.path) for s, a in outcome.artifacts.items()}
                ),
            },
            data_version=outcome.data_version,
            row_count=outcome.records_out,
            counted_sources=sources,
            checks=[no_listed_content(params, sources)],
        )

    return screen
