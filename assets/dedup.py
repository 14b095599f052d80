"""dedup: exact and near-duplicate removal across all sources, incremental over runs."""

from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl

from assets.checks import conservation
from assets.execution import AFTER_UPSTREAM, LEDGER_POOL
from pipelines.params import Params
from pipelines.resource import AssayResource
from resources.dedup import DedupConfig, DedupResult, deduplicate
from resources.dedup_audit import kept_duplicates
from resources.minhash import MinHashConfig, s_curve
from resources.signature_store import (
    Manifest,
    Plan,
    SignatureStore,
    digest_json,
    plan_run,
    source_digests,
)
from resources.storage import artifact, read_stage, stage_path, write_stage
from resources.survivor import survivor_rank

STAGE = "dedup"
UPSTREAM = "ingest"
CODE_VERSION = "dedup-1"
CHECKS = [
    dg.AssetCheckSpec("conservation", asset=STAGE, blocking=True),
    dg.AssetCheckSpec("no_kept_duplicates", asset=STAGE, blocking=True),
]


def dedup_config(params: Params) -> DedupConfig:
    d = params.dedup
    return DedupConfig(
        minhash=MinHashConfig(num_perm=d.num_perm, shingle=d.shingle, ngram=d.ngram, seed=d.seed),
        threshold=d.threshold,
        min_recall=d.min_recall,
        verify=d.verify,
        image_max_distance=d.image_max_distance,
        batch_size=d.batch_size,
        memory_limit=d.memory_limit,
    )


def source_table(params: Params) -> pl.DataFrame:
    """Each source's provenance facts that decide survivors."""
    return pl.DataFrame(
        {
            "source_id": [s.id for s in params.sources],
            "license": [s.license for s in params.sources],
            "consent": [s.consent for s in params.sources],
            "retrieved_at": [s.retrieved_at for s in params.sources],
            "priority": [s.priority for s in params.sources],
        },
        schema_overrides={"retrieved_at": pl.Datetime("us", "UTC")},
    )


def settings_digest(params: Params) -> str:
    """The settings that decide what is a duplicate and who survives: a change means a
    full run. (A source's own provenance is part of that source's digest instead.)"""
    return digest_json(
        {
            "dedup": params.dedup.model_dump(
                mode="json", exclude={"incremental", "check_sample", "batch_size", "memory_limit"}
            ),
            "policy": params.policy.model_dump(mode="json"),
            "code_version": CODE_VERSION,
        }
    )


def current_digests(params: Params, records: pl.DataFrame) -> dict[str, str]:
    """Per declared source: a digest of its records and its provenance facts."""
    by_records = source_digests(records)
    facts = {row["source_id"]: row for row in source_table(params).to_dicts()}
    return {s: digest_json([by_records.get(s), facts[s]]) for s in params.source_ids}


@dg.asset(
    name=STAGE,
    deps=[UPSTREAM],
    code_version=CODE_VERSION,
    pool=LEDGER_POOL,
    automation_condition=AFTER_UPSTREAM,
    check_specs=CHECKS,
    kinds={"parquet", "duckdb"},
    group_name="curation",
)
def dedup(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
    """Remove exact and near duplicates across every source, keeping the best-provenance copy.

    Exact: same normalized text or same decoded pixels. Near: MinHash LSH verified by Jaccard
    (texts), pHash within a Hamming distance (images). Each drop's evidence names the record
    it duplicates. Sources unchanged since the last run keep their accepted records; new or
    changed ones are deduplicated against them (data/dedup/_signatures/).
    """
    params, ledger = assay.params(), assay.ledger()
    run_id = assay.record_run(context)
    data_dir = params.data_dir
    config = dedup_config(params)

    records = read_stage(data_dir, UPSTREAM, params.source_ids)
    store = SignatureStore(data_dir / STAGE / "_signatures")
    stored, manifest = store.load()
    settings = settings_digest(params)
    current = current_digests(params, records)
    plan = plan_run(current, manifest, settings, params.dedup.incremental)

    texts = records.select("source_id", "source_key", "text")
    accepted = stored.filter(pl.col("source_id").is_in(plan.carried)).join(
        texts, on=["source_id", "source_key"], how="inner"
    )
    new = records.filter(pl.col("source_id").is_in(plan.process))
    rank = survivor_rank(
        new,
        source_table(params),
        params.policy.allowed_licenses,
        params.policy.allowed_consent,
        params.dedup.survivor_order,
    )
    result = deduplicate(new, rank, accepted, config)

    artifacts = [
        write_stage(result.kept.filter(pl.col("source_id") == s), data_dir, STAGE, s)
        for s in plan.process
    ]
    for source_id in plan.removed:
        stage_path(data_dir, STAGE, source_id).unlink(missing_ok=True)
    ledger.record_stage(STAGE, run_id, new, result.kept, result.drops)
    # A processed source with no records still gets its (zero) count, so the conservation
    # check can tell "nothing came in" from "never counted".
    present = set(new["source_id"].unique().to_list())
    zero_counts = [
        {"stage": STAGE, "source_id": s, "records_in": 0, "records_out": 0, "dropped": 0}
        for s in plan.process
        if s not in present
    ]
    ledger.append_many(
        [
            ("stage_counts", zero_counts),
            ("artifacts", _artifact_rows(artifacts, plan.process, result)),
            ("dedup_runs", [_run_row(plan, config, result, settings)]),
        ],
        run_id,
    )
    store.save(result.accepted, Manifest(settings, current))

    kept_with_text = result.accepted.join(texts, on=["source_id", "source_key"], how="left")
    checks = [
        conservation(ledger, STAGE, run_id, str(data_dir), plan.process),
        _no_kept_duplicates(kept_with_text, config, params.dedup.check_sample),
    ]
    return dg.MaterializeResult(
        metadata=_metadata(plan, new, result, config),
        data_version=dg.DataVersion(_data_version(data_dir, params.source_ids)),
        check_results=checks,
    )


def _artifact_rows(artifacts: list, source_ids: list[str], result: DedupResult) -> list[dict]:
    counts = Counter(result.kept["source_id"].to_list())
    return [
        {
            "path": str(a.path),
            "sha256": a.sha256,
            "size_bytes": a.size_bytes,
            "stage": STAGE,
            "source_id": s,
            "records": counts.get(s, 0),
        }
        for a, s in zip(artifacts, source_ids, strict=True)
    ]


def _run_row(plan: Plan, config: DedupConfig, result: DedupResult, settings: str) -> dict:
    return {
        "mode": "full" if plan.full else "incremental",
        "processed": ",".join(plan.process),
        "carried": ",".join(plan.carried),
        "threshold": config.threshold,
        "num_perm": config.minhash.num_perm,
        "bands": result.bands,
        "rows_per_band": result.rows,
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        "clusters": result.clusters,
        "settings_digest": settings,
    }


def _no_kept_duplicates(
    kept: pl.DataFrame, config: DedupConfig, sample: int
) -> dg.AssetCheckResult:
    violations = kept_duplicates(kept, config, sample)
    return dg.AssetCheckResult(
        check_name="no_kept_duplicates",
        passed=violations.is_empty(),
        description=(
            f"no kept record is within the threshold (Jaccard >= {config.threshold}, pHash"
            f" distance <= {config.image_max_distance}) of another, on a sample of {sample}"
        ),
        metadata={
            "sampled": min(sample, kept.height),
            "kept": kept.height,
            "violations": violations.height,
            "examples": dg.MetadataValue.json(violations.head(10).to_dicts()),
        },
    )


def _metadata(plan: Plan, new: pl.DataFrame, result: DedupResult, config: DedupConfig) -> dict:
    removed: dict[str, dict[str, int]] = {}
    for row in result.drops.group_by("source_id", "reason").len().sort("source_id").to_dicts():
        removed.setdefault(row["source_id"], {})[row["reason"]] = row["len"]
    histogram = "\n".join(
        ["| records in cluster | clusters |", "|---:|---:|"]
        + [f"| {size} | {count} |" for size, count in sorted(result.cluster_sizes.items())]
    )
    return {
        "mode": "full" if plan.full else "incremental",
        "sources_processed": dg.MetadataValue.json(plan.process),
        "sources_carried": dg.MetadataValue.json(plan.carried),
        "records_in": new.height,
        "records_out": result.kept.height,
        "dropped": result.drops.height,
        "removed_per_source": dg.MetadataValue.json(removed),
        "clusters": result.clusters,
        "cluster_sizes": dg.MetadataValue.json(
            {str(k): v for k, v in result.cluster_sizes.items()}
        ),
        "cluster_size_histogram": dg.MetadataValue.md(histogram),
        "lsh_bands_x_rows": f"{result.bands} x {result.rows}",
        "lsh_recall_at_threshold": round(
            float(s_curve(config.threshold, result.bands, result.rows)), 4
        ),
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        "accepted_total": result.accepted.height,
    }


def _data_version(data_dir: Path, source_ids: list[str]) -> str:
    digests = {}
    for source_id in source_ids:
        path = stage_path(data_dir, STAGE, source_id)
        digests[source_id] = artifact(path).sha256 if path.exists() else None
    return digest_json(digests)
