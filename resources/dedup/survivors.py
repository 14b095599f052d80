"""Which copy of a duplicate survives: the one with the best provenance.

Each record gets a rank (0 is best) from its source's provenance, compared criterion by
criterion in a configurable order:

- "policy": the source's license is allowed and its consent basis is allowed (both, then
  one, then neither);
- "retrieved_at": earlier retrieval first (the older copy is the likelier original; a source
  without a retrieval time goes last);
- "priority": the source's declared priority, higher first (params' default 0 means none
  declared, so declaring any positive priority promotes a source).

Records equal on every criterion share a rank; dedup breaks such ties by content (the
larger image or the longer text survives), then by source_id and source_key, so the choice
never depends on input order.
"""

from collections.abc import Collection, Sequence

import numpy as np
import polars as pl

CRITERIA = ("policy", "retrieved_at", "priority")
DEFAULT_ORDER: tuple[str, ...] = CRITERIA


def survivor_rank(
    records: pl.DataFrame,
    sources: pl.DataFrame,
    allowed_licenses: Collection[str],
    allowed_consent: Collection[str],
    order: Sequence[str] = DEFAULT_ORDER,
) -> np.ndarray:
    """Dense provenance rank of each record (rows with source_id); 0 is the best.

    sources has one row per source_id with license, consent, retrieved_at (datetime or
    null) and priority (int or null; null sorts last).
    """
    unknown = set(order) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown survivor criteria {sorted(unknown)}; known: {CRITERIA}")
    meta = sources.select(
        pl.col("source_id"),
        (
            (~pl.col("license").is_in(list(allowed_licenses))).fill_null(True).cast(pl.Int8)
            + (~pl.col("consent").is_in(list(allowed_consent))).fill_null(True).cast(pl.Int8)
        ).alias("policy"),
        pl.col("retrieved_at").cast(pl.Datetime("us", "UTC")).alias("retrieved_at"),
        (-pl.col("priority").cast(pl.Int64)).alias("priority"),
    )
    joined = (
        records.select("source_id")
        .with_row_index("_row")
        .join(meta, on="source_id", how="left", maintain_order="left")
    )
    missing = joined.filter(pl.col("policy").is_null())["source_id"].unique().to_list()
    if missing:
        raise ValueError(f"records from undeclared sources: {missing}")
    if not order:
        return np.zeros(records.height, np.int64)
    ranked = joined.sort(list(order), nulls_last=True).with_columns(
        pl.struct(list(order)).rle_id().alias("_rank")
    )
    return ranked.sort("_row")["_rank"].to_numpy().astype(np.int64)
