"""Revocation: a signed entry per revoked release in the ledger, and an exportable signed list.

``revoke`` is what rescreen calls when a listed item is found in a released record or a
training run is tainted: every PASSED release that holds one of the records (or is named) is
revoked. ``assay verify`` fails a release the list names, and says why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from resources.core.ledger import Ledger
from resources.core.signing import Signer, fingerprint, verify_signature
from resources.core.storage import canonical_json, write_text
from resources.release.keys import load_signer

REVOCATIONS_FILE = "revocations.json"
SIGNED_FIELDS = ("release_id", "reason", "incident_ids", "record_ids", "revoked_at")


def _payload(entry: dict) -> bytes:
    return canonical_json({k: entry[k] for k in SIGNED_FIELDS}).encode("utf-8")


def releases_holding(ledger: Ledger, record_ids: Sequence[str]) -> list[str]:
    """PASSED releases whose training set has any of these records as a member."""
    if not record_ids:
        return []
    return ledger.query(
        "SELECT DISTINCT r.release_id FROM releases r JOIN training_set t"
        " ON t.run_id = r.training_run_id WHERE r.status = 'PASSED' AND t.role = 'member'"
        " AND t.record_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY r.release_id",
        [list(record_ids)],
    )["release_id"].to_list()


def revoked_ids(ledger: Ledger) -> set[str]:
    return set(ledger.query("SELECT DISTINCT release_id FROM revocations")["release_id"])


def revoke_holders(
    ledger: Ledger, record_ids: Sequence[str], key_file: Path, run_id: str | None = None
) -> list[str]:
    """Rescreen's hook: revoke every PASSED release that holds one of these listed records.

    The key is loaded only when there is something to revoke; missing then, it is an error
    (fail closed: a release holding a listed record must not stay unrevoked silently).
    """
    if not releases_holding(ledger, record_ids):
        return []
    incidents = ledger.query(
        "SELECT DISTINCT incident_id FROM incidents"
        " WHERE record_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY incident_id",
        [list(record_ids)],
    )["incident_id"].to_list()
    return revoke(
        ledger,
        record_ids=record_ids,
        reason="harmful_hash_match",
        incident_ids=incidents,
        key=load_signer(key_file),
        run_id=run_id,
    )


def revoke(
    ledger: Ledger,
    release_ids: Sequence[str] = (),
    record_ids: Sequence[str] = (),
    *,
    reason: str,
    incident_ids: Sequence[str] = (),
    key: Signer,
    run_id: str | None = None,
    out_dir: Path | None = None,
) -> list[str]:
    """Revoke the named releases and every release holding one of ``record_ids``.

    Writes one signed revocations row per release not already revoked, a signed checkpoint,
    and the signed revocation list (out_dir, default the releases' folder). Returns the ids
    newly revoked.
    """
    targets = sorted(set(release_ids) | set(releases_holding(ledger, record_ids)))
    known = set(ledger.query("SELECT release_id FROM releases")["release_id"])
    unknown = sorted(set(release_ids) - known)
    if unknown:
        raise ValueError(f"no such release(s) in the ledger: {unknown}")
    fresh = [r for r in targets if r not in revoked_ids(ledger)]
    now = datetime.now(UTC).isoformat()
    rows = []
    for release_id in fresh:
        entry = {
            "release_id": release_id,
            "reason": reason,
            "incident_ids": canonical_json(sorted(incident_ids)),
            "record_ids": canonical_json(sorted(record_ids)),
            "revoked_at": now,
        }
        rows.append(
            entry | {"key_fingerprint": key.fingerprint, "signature": key.sign(_payload(entry))}
        )
    if rows:
        ledger.append("revocations", rows, run_id)
        ledger.checkpoint(key, f"revoked {', '.join(fresh)}", run_id)
    export_revocations(ledger, out_dir or _release_dir(ledger), key)
    return fresh


def _release_dir(ledger: Ledger) -> Path:
    paths = ledger.query("SELECT path FROM releases ORDER BY entry_seq DESC LIMIT 1")
    return Path(paths.item()).parent if paths.height else ledger.path.parent / "release"


def export_revocations(ledger: Ledger, out_dir: Path, key: Signer) -> Path:
    """Write out_dir/revocations.json: every revocation, the list signed as a whole."""
    entries = ledger.query(
        "SELECT release_id, reason, incident_ids, record_ids, revoked_at, key_fingerprint,"
        " signature FROM revocations ORDER BY entry_seq, row_no"
    ).to_dicts()
    for entry in entries:
        entry["revoked_at"] = entry["revoked_at"].isoformat()  # as it was signed
    body = {"issued_at": datetime.now(UTC).isoformat(), "revocations": entries}
    document = body | {
        "key_fingerprint": key.fingerprint,
        "public_key": key.public_pem,
        "signature": key.sign(canonical_json(body).encode("utf-8")),
    }
    return write_text(json.dumps(document, indent=2) + "\n", Path(out_dir) / REVOCATIONS_FILE)


def read_revocations(path: Path, trusted_fingerprint: str) -> dict[str, dict]:
    """The revocation list's entries by release id; raises ValueError when it does not verify."""
    document = json.loads(path.read_text(encoding="utf-8"))
    pem = document["public_key"]
    if fingerprint(pem) != trusted_fingerprint:
        raise ValueError(f"{path} is signed by another key ({fingerprint(pem)[:16]}…)")
    body = {k: document[k] for k in ("issued_at", "revocations")}
    if not verify_signature(pem, canonical_json(body).encode("utf-8"), document["signature"]):
        raise ValueError(f"{path}: the list's signature does not verify")
    out = {}
    for entry in document["revocations"]:
        if not verify_signature(pem, _payload(entry), entry["signature"]):
            raise ValueError(f"{path}: the entry for {entry['release_id']} does not verify")
        out[entry["release_id"]] = entry
    return out
