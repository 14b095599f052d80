"""The record: one ingested item, identified by the hash of its kind and content.

A stage's output is a Parquet file with exactly RECORD_SCHEMA's columns. record_id is
content-addressed, so two occurrences of the same bytes share it; an occurrence is named by
(source_id, source_key). After exact dedup, record_id is unique across the corpus.
"""

import hashlib

import polars as pl

TEXT = "text"
IMAGE = "image"

RECORD_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "kind": pl.String(),
    "text": pl.String(),
    "image_path": pl.String(),
}

HAS_TEXT = (pl.col("kind") == TEXT) & pl.col("text").is_not_null()
"""The records a text stage reads: text records with their text."""

DROP_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "source_id": pl.String(),
    "source_key": pl.String(),
    "reason": pl.String(),
    "evidence": pl.String(),
}
"""What a stage drops, as Ledger.record_stage takes it: the occurrence, a Reason, evidence JSON."""


def record_id(kind: str, content: bytes) -> str:
    """sha256 hex of the kind, a NUL byte, and the canonical content bytes.

    Text's canonical bytes are its UTF-8 encoding; an image's are its file's bytes.
    """
    digest = hashlib.sha256(kind.encode("ascii"))
    digest.update(b"\0")
    digest.update(content)
    return digest.hexdigest()


def text_record_id(text: str) -> str:
    return record_id(TEXT, text.encode("utf-8"))


def empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_SCHEMA)
