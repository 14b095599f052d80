"""`assay verify RELEASE_DIR`: check a release offline, naming every failure.

Checks: the public key (and, when given, that it is the trusted one); the model-signing
signature over every file (a changed, missing or extra file fails); the DSSE envelopes'
signatures; every statement subject against the file it names; the training-set manifest
against the digest the provenance names; the verdict (PASSED in verdict.json and the signed
VSA); the ledger head (against the ledger, when there is one); and the revocation list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from resources.core.ledger import Ledger
from resources.core.signing import fingerprint
from resources.core.storage import file_sha256
from resources.release import attest
from resources.release.policy import PASSED
from resources.release.revocation import REVOCATIONS_FILE, read_revocations
from resources.release.signing import file_differences, signed_files, verify_directory
from resources.release.stage import FINGERPRINT, MODEL_FILE, PROVENANCE, PUBLIC_KEY, VERDICT, VSA
from resources.train.training_run import training_set_digest


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def verify_release(
    directory: Path,
    revocations: Path | None = None,
    ledger: Ledger | None = None,
    trusted_fingerprint: str | None = None,
) -> list[Check]:
    """Every check of the release; it holds when all are ok."""
    directory = Path(directory)
    if not (directory / PUBLIC_KEY).exists():
        return [Check("key", False, f"no public key at {directory / PUBLIC_KEY}")]
    pem = (directory / PUBLIC_KEY).read_text(encoding="ascii", errors="replace")
    try:
        key_fp = fingerprint(pem)
    except ValueError as err:
        return [Check("key", False, f"{PUBLIC_KEY} is not a PEM public key: {err}")]
    checks = [_key_check(directory, key_fp, trusted_fingerprint)]
    problem = verify_directory(directory, directory / PUBLIC_KEY)
    if problem and problem.startswith("Signature mismatch"):
        problem = "model-signing: the files differ from the signed manifest (see files)"
    checks.append(Check("signature", problem is None, problem or "model-signing: every file"))
    statements, envelope_checks = _open_statements(directory, pem, key_fp)
    checks += envelope_checks
    verdict = _read_json(directory / VERDICT)
    revocations = revocations or directory.parent / REVOCATIONS_FILE
    for name, check, args in (
        ("files", _files_check, (directory,)),
        ("subjects", _subjects_check, (directory, statements)),
        ("verdict", _verdict_check, (directory, verdict, statements)),
        ("training_set", _training_set_check, (directory, verdict, statements)),
        ("ledger_head", _ledger_check, (verdict, ledger, trusted_fingerprint or key_fp)),
        ("revocation", _revocation_check, (directory.name, revocations, ledger, key_fp)),
    ):
        try:
            checks.append(check(*args))
        except Exception as err:  # a malformed file fails its check; it never stops the rest
            checks.append(Check(name, False, f"{type(err).__name__}: {err}"))
    return checks


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _files_check(directory: Path) -> Check:
    differences = file_differences(directory)
    detail = "; ".join(differences) or f"{len(signed_files(directory))} files, none changed"
    return Check("files", not differences, detail)


def _key_check(directory: Path, key_fp: str, trusted: str | None) -> Check:
    listed = (
        (directory / FINGERPRINT).read_text().strip()
        if (directory / FINGERPRINT).exists()
        else None
    )
    if listed != key_fp:
        return Check("key", False, f"{FINGERPRINT} says {listed}, the key's is {key_fp}")
    if trusted and key_fp != trusted:
        return Check("key", False, f"signed by {key_fp}, not the trusted key {trusted}")
    pinned = "the trusted key" if trusted else "not pinned: pass --public-key to pin it"
    return Check("key", True, f"ECDSA P-256 {key_fp} ({pinned})")


def _open_statements(directory: Path, pem: str, key_fp: str) -> tuple[dict, list[Check]]:
    verdict = _read_json(directory / VERDICT)
    names = [VSA] + ([PROVENANCE] if verdict.get("status") == PASSED else [])
    statements, checks = {}, []
    for name in names:
        try:
            statements[name] = attest.open_envelope(directory / name, pem, key_fp)
            checks.append(Check(f"envelope {name}", True, "DSSE signature verifies"))
        except Exception as err:  # missing file, bad JSON, or a signature that fails
            checks.append(Check(f"envelope {name}", False, f"{type(err).__name__}: {err}"))
    return statements, checks


def _subjects_check(directory: Path, statements: dict) -> Check:
    bad, seen = [], 0
    for name, stmt in statements.items():
        for subject in stmt.get("subject", []):
            seen += 1
            path = directory / subject["name"]
            actual = file_sha256(path) if path.is_file() else None
            if actual != subject["digest"].get("sha256"):
                bad.append(f"{name} names {subject['name']} with a digest the file lacks")
    if not statements:
        return Check("subjects", False, "no statement could be read")
    return Check("subjects", not bad, "; ".join(bad) or f"{seen} subject(s) match their files")


def _verdict_check(directory: Path, verdict: dict, statements: dict) -> Check:
    vsa = statements.get(VSA, {}).get("predicate", {})
    status, signed = verdict.get("status"), vsa.get("verificationResult")
    if verdict.get("release_id") != directory.name:
        return Check("verdict", False, f"verdict names release {verdict.get('release_id')}")
    if status != signed:
        return Check("verdict", False, f"verdict.json says {status}, the signed VSA {signed}")
    if status != PASSED:
        reasons = "; ".join(f"{v['rule']}: {v['reason']}" for v in verdict.get("violations", []))
        return Check("verdict", False, f"the gate blocked this release ({status}): {reasons}")
    if not (directory / MODEL_FILE).exists():
        return Check("verdict", False, "PASSED but no model in the release")
    return Check("verdict", True, "PASSED, signed")


def _training_set_check(directory: Path, verdict: dict, statements: dict) -> Check:
    if verdict.get("status") != PASSED:
        return Check("training_set", False, "a blocked release has no training set")
    path = directory / "training_set.jsonl"
    if not path.is_file():
        return Check("training_set", False, f"no training-set manifest at {path}")
    ids = [json.loads(line)["record_id"] for line in path.read_text().splitlines() if line]
    digest = training_set_digest(ids)
    deps = statements.get(PROVENANCE, {}).get("predicate", {}).get("buildDefinition", {})
    named = {d.get("name"): d for d in deps.get("resolvedDependencies", [])}
    claimed = named.get("training_set", {}).get("digest", {}).get("sha256")
    ok = digest == claimed == verdict.get("training_set_digest")
    return Check("training_set", ok, f"{len(ids)} records, digest {digest[:16]}…")


def _ledger_check(verdict: dict, ledger: Ledger | None, trusted: str) -> Check:
    head = verdict.get("ledger_head") or {}
    seq, entry_hash = head.get("seq"), head.get("entry_hash")
    if ledger is None or not ledger.path.exists():
        return Check(
            "ledger_head", True, f"signed head {seq}:{str(entry_hash)[:16]}… (no ledger here)"
        )
    result = ledger.verify(trusted)
    if not result.ok:
        return Check(
            "ledger_head", False, f"ledger verify fails at {result.first_bad}: {result.problem}"
        )
    found = ledger.query("SELECT entry_hash FROM chain WHERE seq = ?", [seq])
    if found.is_empty() or found.item() != entry_hash:
        return Check("ledger_head", False, f"the ledger has no entry {seq} with the signed hash")
    return Check(
        "ledger_head", True, f"entry {seq} in the ledger ({result.entries} entries, verified)"
    )


def _revocation_check(release_id: str, path: Path, ledger: Ledger | None, key_fp: str) -> Check:
    if not path.exists():
        return Check("revocation", False, f"no revocation list at {path}; pass --revocations")
    try:
        listed = read_revocations(path, key_fp)
    except (ValueError, KeyError) as err:
        return Check("revocation", False, str(err))
    if ledger is not None and ledger.path.exists():
        rows = ledger.query("SELECT * FROM revocations WHERE release_id = ?", [release_id])
        listed.update({r["release_id"]: r for r in rows.to_dicts()})
    if release_id in listed:
        entry = listed[release_id]
        incidents = entry["incident_ids"]
        detail = f"REVOKED at {entry['revoked_at']}: {entry['reason']} (incidents {incidents})"
        return Check("revocation", False, detail)
    return Check("revocation", True, f"not revoked ({len(listed)} revocation(s) in {path.name})")
