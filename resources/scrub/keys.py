"""PII in identifiers: a source's own key for an item (an id field, a file name) is scanned like
a text, and a key that holds PII is replaced by a keyed hash before anything stores it.

``protect_key`` is deterministic under one salt (ASSAY_PII_SALT, as the hash operator), so the
same raw key always maps to the same stored key: ``assay ledger why RAW_KEY`` hashes what it is
given the same way and finds the record, while the ledger and every output hold only the hash.
"""

import hashlib
import hmac
from functools import cache

from resources.scrub.config import ScrubConfig
from resources.scrub.salt import resolve_salt

PREFIX = "pii-key:"
"""Marks a stored key as the keyed hash of a raw key that held PII."""
_SEPARATORS = str.maketrans({"_": " ", "/": " ", "\\": " ", "+": " "})


@cache
def _detector():
    from resources.scrub.detection import Detector  # Presidio: only once a key is scanned

    return Detector(ScrubConfig(workers=1))


def _spaced(key: str) -> str:
    return key.translate(_SEPARATORS)


NOT_PII_IN_A_KEY = frozenset({"URL"})
"""A web source's keys are its pages' URLs: the item's provenance, kept readable. A URL that
holds an email, a name or a number is still found as that and hashed."""


def holds_pii(key: str) -> bool:
    """Whether the key, as written or with path and word separators read as spaces, holds PII."""
    detector = _detector()
    for variant in {key, _spaced(key)}:
        if any(s.entity_type not in NOT_PII_IN_A_KEY for s in detector.detect(variant)):
            return True
    return False


def hashed_key(key: str) -> str:
    """The stored form of a raw key that held PII: PREFIX + 32 hex digits of its HMAC."""
    salt = resolve_salt(ScrubConfig().salt_env)
    return PREFIX + hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def protect_key(key: str) -> str:
    """key itself when it holds no PII, else its keyed hash."""
    return protect_keys([key])[0]


def protect_keys(keys: list[str]) -> list[str]:
    """protect_key of each key; the NER model reads them all in one batch."""
    fresh = [k for k in keys if not k.startswith(PREFIX)]  # a re-read of our own output
    if fresh:
        _detector().prefetch(fresh + [s for k in fresh if (s := _spaced(k)) != k])
    return [k if k.startswith(PREFIX) or not holds_pii(k) else hashed_key(k) for k in keys]
