"""The dedup section of params.yaml: how texts are shingled and hashed, what is a duplicate."""

from typing import ClassVar, Literal

from pydantic import Field

from resources.core.config import Section


class MinHashConfig(Section):
    """How a text becomes a MinHash signature."""

    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(5, ge=1, le=64)
    num_perm: int = Field(128, ge=16, le=1024)
    seed: int = 1


class DedupConfig(MinHashConfig):
    """Exact and near-duplicate removal across all sources."""

    threshold: float = Field(0.8, gt=0.0, le=1.0)
    """Jaccard similarity of two texts' shingle sets at or above which they are duplicates."""
    min_recall: float = Field(0.95, gt=0.0, lt=1.0)
    """LSH bands are chosen so pairs exactly at the threshold become candidates this often."""
    verify: Literal["exact", "estimated"] = "exact"
    """Confirm candidates by the true Jaccard of their shingles, or by the MinHash estimate."""
    image_max_distance: int = Field(6, ge=1, le=31)
    """pHash Hamming distance (of 64 bits) at or below which two images are duplicates."""
    survivor_order: list[Literal["policy", "retrieved_at", "priority"]] = [
        "policy",
        "retrieved_at",
        "priority",
    ]
    incremental: bool = True
    """Dedup only new or changed sources against the accepted set when nothing else changed."""
    check_sample: int = Field(500, ge=1)
    """Kept records (per kind) the no-duplicates-left check compares against all kept records;
    a kept set this small or smaller is checked exhaustively."""
    residual_tolerance: float = Field(0.02, ge=0.0, lt=1.0)
    """The no_kept_duplicates check blocks when the upper confidence bound on the share of
    kept records that still have a kept duplicate is above this."""
    check_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Confidence of that one-sided (Clopper-Pearson) upper bound."""
    batch_size: int = Field(5_000, ge=1)
    memory_limit: str = "1GB"
    """DuckDB's memory limit while grouping band keys; beyond it DuckDB spills to disk."""

    RUN_ONLY: ClassVar[frozenset[str]] = frozenset(
        {
            "incremental",
            "check_sample",
            "residual_tolerance",
            "check_confidence",
            "batch_size",
            "memory_limit",
        }
    )
    """Fields that change how a run goes, not what it decides: no full re-run when they change."""
