"""Text normalization shared by exact dedup and normalized-text hash screening."""

import hashlib
import unicodedata


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed to single spaces and stripped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())  # same as collapsing r"\s+", about 4x faster


def normalized_sha256(text: str) -> str:
    """sha256 hex of the UTF-8 bytes of ``normalize_text(text)``."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()
