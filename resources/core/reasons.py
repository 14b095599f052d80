"""The one vocabulary of reasons a record can be dropped for.

Every drop in the ledger carries exactly one of these codes. ``assay ledger reasons`` prints
them from this module's docstrings, and tests/test_readme.py holds docs/reasons.md to them.
"""

from enum import StrEnum


class Reason(StrEnum):
    """Why a record did not go on to the next stage."""

    MALFORMED = "malformed"
    """The item could not be parsed (bad JSON, wrong CSV arity, missing or non-text field)."""
    ENCODING = "encoding"
    """The item's bytes are not valid UTF-8."""
    UNREADABLE = "unreadable"
    """A file could not be opened or decoded (truncated or corrupt image, I/O error)."""
    TOO_LARGE = "too_large"
    """The item is larger than ingest.max_record_bytes."""
    EMPTY = "empty"
    """The item's text is empty or only whitespace."""
    OUTSIDE_ROOT = "outside_root"
    """The file resolves (through a symlink or '..') to a place outside its source's root."""
    LICENSE_DISALLOWED = "license_disallowed"
    """The source's SPDX license is not in policy.allowed_licenses."""
    NO_CONSENT = "no_consent"
    """The source's consent basis is not in policy.allowed_consent."""
    DUPLICATE_EXACT = "duplicate_exact"
    """Same normalized text or same decoded pixels as a kept record (evidence: duplicate_of)."""
    DUPLICATE_NEAR = "duplicate_near"
    """Near-duplicate of a kept record (evidence: duplicate_of, method, similarity)."""
    PII_OVER_LIMIT = "pii_over_limit"
    """More PII entities than pii.max_entities_per_doc allows."""
    HARMFUL_HASH_MATCH = "harmful_hash_match"
    """Matched an entry of a known-harmful hash list (evidence: list, hash type, distance)."""
    CONTENT_CHANGED = "content_changed"
    """The file's bytes changed after ingest: they no longer hash to the record's record_id."""


def describe(reason: Reason) -> str:
    """The one-line meaning of a reason code, as documented above."""
    return _DESCRIPTIONS[reason]


def _read_descriptions() -> dict[Reason, str]:
    import ast
    import inspect
    import itertools

    tree = ast.parse(inspect.getsource(Reason))
    body = tree.body[0].body
    out: dict[Reason, str] = {}
    for node, following in itertools.pairwise(body):
        if isinstance(node, ast.Assign) and isinstance(following, ast.Expr):
            out[Reason(node.value.value)] = following.value.value
    return out


_DESCRIPTIONS = _read_descriptions()
