"""The dedup stage without Dagster: plan an incremental run, dedup, write, record in the ledger.

Sources unchanged since the last run (same records, same provenance, same settings) keep
their accepted records in the signature store (data/dedup/_signatures/); new or changed
sources are deduplicated against them. A change of any setting that decides duplicates or
survivors means a full run.
"""

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from resources.core.audit import LIVE
from resources.core.corpus import Corpus
from resources.core.engine import LOCAL, EngineConfig
from resources.core.ledger import Ledger, evidence
from resources.core.reasons import Reason
from resources.core.records import DROP_SCHEMA, TEXT
from resources.core.storage import json_sha256, read_stage, stage_data_version, write_stage
from resources.dedup.audit import ResidualEstimate, audit_kept
from resources.dedup.config import DedupConfig
from resources.dedup.engine import DedupResult, deduplicate
from resources.dedup.minhash import s_curve
from resources.dedup.signature_store import Manifest, Plan, SignatureStore, plan_run, source_digests
from resources.dedup.survivors import survivor_rank

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
    """pairs of kept records within the threshold, on a sample (dedup.audit.VIOLATION_SCHEMA)"""
    estimate: ResidualEstimate
    """the residual duplicate rate, from that sample (before its pairs were removed)"""
    removed_by_audit: int
    """records of this run dropped because the audit verified them as duplicates"""
    unresolved: int
    """verified pairs left in: both records were accepted by earlier runs"""
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


def source_table(corpus: Corpus) -> pl.DataFrame:
    """Each source's provenance facts that decide survivors."""
    sources = corpus.sources
    return pl.DataFrame(
        {
            "source_id": [s.id for s in sources],
            "license": [s.license for s in sources],
            "consent": [s.consent for s in sources],
            "retrieved_at": [s.retrieved_at for s in sources],
            "priority": [s.priority for s in sources],
        },
        schema_overrides={"retrieved_at": pl.Datetime("us", "UTC")},
    )


def settings_digest(config: DedupConfig, corpus: Corpus) -> str:
    """The settings that decide what is a duplicate and who survives: a change means a
    full run. (A source's own provenance is part of that source's digest instead.)"""
    return json_sha256(
        {
            "dedup": config.model_dump(mode="json", exclude=set(DedupConfig.RUN_ONLY)),
            "policy": corpus.policy.model_dump(mode="json"),
            "code_version": CODE_VERSION,
        }
    )


def current_digests(corpus: Corpus, records: pl.DataFrame) -> dict[str, str]:
    """Per declared source: a digest of its records and its provenance facts."""
    by_records = source_digests(records)
    facts = {row["source_id"]: row for row in source_table(corpus).to_dicts()}
    return {s: json_sha256([by_records.get(s), facts[s]]) for s in corpus.source_ids}


def run(
    config: DedupConfig,
    ledger: Ledger,
    run_id: str,
    corpus: Corpus,
    engine: EngineConfig = LOCAL,
) -> DedupOutcome:
    """Dedup the new or changed sources against the accepted set (MinHash signatures on the
    engine); write data/dedup/<source>.parquet for each, drop the files of sources no longer
    declared, ledger it all, save the store, and audit a sample of what is kept."""
    data_dir = corpus.data_dir
    records = read_stage(data_dir, UPSTREAM, corpus.source_ids)
    store = SignatureStore(data_dir / STAGE / "_signatures")
    stored, manifest = store.load()
    manifest = manifest if _counted(ledger, manifest) else None
    settings = settings_digest(config, corpus)
    current = current_digests(corpus, records)
    plan = plan_run(current, manifest, settings, config.incremental)

    texts = records.select("source_id", "source_key", "text")
    accepted = stored.filter(pl.col("source_id").is_in(plan.carried)).join(
        texts, on=["source_id", "source_key"], how="inner"
    )
    new = records.filter(pl.col("source_id").is_in(plan.process))
    rank = survivor_rank(
        new,
        source_table(corpus),
        corpus.policy.allowed_licenses,
        corpus.policy.allowed_consent,
        config.survivor_order,
    )
    result = deduplicate(new, rank, accepted, config, engine)
    audited = result.accepted.join(texts, on=["source_id", "source_key"], how="left")
    violations, estimate = audit_kept(audited, config, config.check_sample, config.check_confidence)
    result, removed, unresolved = remove_verified(result, violations, new, rank)

    artifacts = [
        write_stage(result.kept.filter(pl.col("source_id") == s), data_dir, STAGE, s)
        for s in plan.process
    ]
    for source_id in plan.removed:
        corpus.output(STAGE, source_id).unlink(missing_ok=True)
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
            ("artifacts", [a.row() for a in artifacts]),
            ("dedup_runs", [_run_row(plan, config, result, settings)]),
        ],
        run_id,
    )
    store.save(result.accepted, Manifest(settings, current))

    return DedupOutcome(
        plan=plan,
        config=config,
        result=result,
        records_in=new.height,
        audited=audited.height,
        violations=violations,
        estimate=estimate,
        removed_by_audit=removed,
        unresolved=unresolved,
        data_version=stage_data_version(data_dir, STAGE, corpus.source_ids),
    )


def remove_verified(
    result: DedupResult, violations: pl.DataFrame, new: pl.DataFrame, rank: np.ndarray
) -> tuple[DedupResult, int, int]:
    """Drop, of every pair the audit verified, the record of this run that ranks worse.

    Returns the result without them, how many were dropped, and how many pairs were left
    because both records were accepted by earlier runs (whose sources this run carries).
    """
    this_run = dict(zip(new["record_id"], rank.tolist(), strict=True))
    this_run = {r: this_run[r] for r in result.kept["record_id"]}
    dropped: dict[str, tuple[str, float, str]] = {}
    unresolved = 0
    for a, b, kind, similarity in violations.sort("similarity", descending=True).iter_rows():
        if a in dropped or b in dropped:
            continue
        candidates = [r for r in (a, b) if r in this_run]
        if not candidates:
            unresolved += 1
            continue
        victim = max(candidates, key=lambda r: (this_run[r], r))
        dropped[victim] = (b if victim == a else a, similarity, kind)
    if not dropped:
        return result, 0, unresolved
    ids = result.accepted.select("record_id", "source_id", "source_key")
    where = {r["record_id"]: r for r in ids.to_dicts()}
    rows = []
    for victim, (survivor, similarity, kind) in dropped.items():
        method = "audit_exact_jaccard" if kind == TEXT else "audit_phash_hamming"
        facts = {"duplicate_of": where[survivor], "method": method, "similarity": similarity}
        rows.append(
            where[victim] | {"reason": str(Reason.DUPLICATE_NEAR), "evidence": evidence(**facts)}
        )
    gone = pl.col("record_id").is_in(list(dropped))
    drops = pl.concat([result.drops, pl.DataFrame(rows, schema=DROP_SCHEMA)])
    cleaned = replace(
        result, kept=result.kept.filter(~gone), accepted=result.accepted.filter(~gone), drops=drops
    )
    return cleaned, len(dropped), unresolved


def _counted(ledger: Ledger, manifest: Manifest | None) -> bool:
    """Whether every source of the store has a dedup count from a run that did not fail.

    A run that died after saving the store has its ledger rows ignored; the store it left is
    not trusted either, so the next run is a full one.
    """
    if manifest is None:
        return False
    live = ledger.query(
        f"SELECT DISTINCT source_id FROM stage_counts WHERE stage = ? AND {LIVE}", [STAGE]
    )
    return set(manifest.sources) <= set(live["source_id"])


def _run_row(plan: Plan, config: DedupConfig, result: DedupResult, settings: str) -> dict:
    return {
        "mode": "full" if plan.full else "incremental",
        "processed": ",".join(plan.process),
        "carried": ",".join(plan.carried),
        "threshold": config.threshold,
        "num_perm": config.num_perm,
        "bands": result.bands,
        "rows_per_band": result.rows,
        "candidate_pairs": result.candidate_pairs,
        "verified_pairs": result.verified_pairs,
        "clusters": result.clusters,
        "settings_digest": settings,
    }
