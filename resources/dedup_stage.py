"""The dedup stage without Dagster: plan an incremental run, dedup, write, record in the ledger.

Sources unchanged since the last run (same records, same provenance, same settings) keep
their accepted records in the signature store (data/dedup/_signatures/); new or changed
sources are deduplicated against them. A change of any setting that decides duplicates or
survivors means a full run.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.params import Params
from resources.dedup import DedupConfig, DedupResult, deduplicate
from resources.dedup_audit import kept_duplicates
from resources.ledger import Ledger
from resources.minhash import MinHashConfig, s_curve
from resources.signature_store import (
    Manifest,
    Plan,
    SignatureStore,
    digest_json,
    plan_run,
    source_digests,
)
from resources.storage import Artifact, artifact, read_stage, stage_path, write_stage
from resources.survivor import survivor_rank

STAGE = "dedup"
UPSTREAM = "ingest"
CODE_VERSION = "dedup-1"


@dataclass
class DedupOutcome:
    plan: Plan
    config: DedupConfig
    result: DedupResult
    records_in: int
    """records of the processed sources"""
    audited: int
    """accepted records (with their text) the kept-duplicates audit looked among"""
    violations: pl.DataFrame
    """pairs of kept records within the threshold, on a sample (dedup_audit.VIOLATION_SCHEMA)"""
    data_version: str
    """digest of every declared source's output file"""

    @property
    def mode(self) -> str:
        return "full" if self.plan.full else "incremental"

    @property
    def removed_per_source(self) -> dict[str, dict[str, int]]:
        """source_id -> reason -> records dropped in this run."""
        removed: dict[str, dict[str, int]] = {}
        drops = self.result.drops.group_by("source_id", "reason").len().sort("source_id")
        for row in drops.to_dicts():
            removed.setdefault(row["source_id"], {})[row["reason"]] = row["len"]
        return removed

    @property
    def recall_at_threshold(self) -> float:
        """LSH probability of catching a pair exactly at the threshold, for the bands used."""
        return float(s_curve(self.config.threshold, self.result.bands, self.result.rows))


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


def dedup_stage(params: Params, ledger: Ledger, run_id: str) -> DedupOutcome:
    """Dedup the new or changed sources against the accepted set; write data/dedup/<source>
    .parquet for each, drop the files of sources no longer declared, ledger it all, save the
    store, and audit a sample of what is kept."""
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
    return DedupOutcome(
        plan=plan,
        config=config,
        result=result,
        records_in=new.height,
        audited=kept_with_text.height,
        violations=kept_duplicates(kept_with_text, config, params.dedup.check_sample),
        data_version=data_version(data_dir, params.source_ids),
    )


def _artifact_rows(
    artifacts: list[Artifact], source_ids: list[str], result: DedupResult
) -> list[dict]:
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


def data_version(data_dir: Path, source_ids: list[str]) -> str:
    """Digest of each declared source's dedup output (None where it has none)."""
    digests = {}
    for source_id in source_ids:
        path = stage_path(data_dir, STAGE, source_id)
        digests[source_id] = artifact(path).sha256 if path.exists() else None
    return digest_json(digests)
