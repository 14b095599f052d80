"""in-toto statements in DSSE envelopes (securesystemslib): SLSA provenance v1 and a VSA v1.

The provenance's subject is the model; its resolved dependencies are the training set, the
params, the git commit and the ledger head. The verification summary's subject is the model
too (or, for a blocked release, the facts the gate read), and its result is the gate's verdict.
Both are signed with the release key; the DSSE keyid is the key's fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from resources.core.signing import Signer

PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
SLSA_VSA = "https://slsa.dev/verification_summary/v1"
BUILD_TYPE = "https://github.com/assay/assay/release/v1"
BUILDER_ID = "https://github.com/assay/assay/pipelines/release"
VERIFIER_ID = "https://github.com/assay/assay/resources/release/policy"


def subject(name: str, sha256: str) -> ResourceDescriptor:
    return ResourceDescriptor(name=name, digest={"sha256": sha256})


def statement(subjects: list[tuple[str, str]], predicate_type: str, predicate: dict) -> dict:
    """A validated in-toto v1 statement as a dict."""
    stmt = Statement([subject(n, d).pb for n, d in subjects], predicate_type, predicate)
    stmt.validate()
    return json_format.MessageToDict(stmt.pb)


def provenance(
    model: tuple[str, str],
    dependencies: list[dict],
    external: dict,
    invocation_id: str,
    started_on: str,
) -> dict:
    """SLSA provenance v1 for the model; ``dependencies`` are resource descriptor dicts."""
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID},
            "metadata": {"invocationId": invocation_id, "startedOn": started_on},
        },
    }
    json_format.ParseDict(predicate, provenance_pb2.Provenance())  # the predicate's schema
    return statement([model], SLSA_PROVENANCE, predicate)


def verification_summary(
    subjects: list[tuple[str, str]],
    status: str,
    policy: tuple[str, str],
    inputs: list[tuple[str, str]],
    time_verified: str,
) -> dict:
    """A SLSA verification summary v1 carrying the gate's verdict (PASSED or FAILED)."""
    predicate = {
        "verifier": {"id": VERIFIER_ID},
        "timeVerified": time_verified,
        "resourceUri": subjects[0][0],
        "policy": {"uri": policy[0], "digest": {"sha256": policy[1]}},
        "inputAttestations": [{"uri": n, "digest": {"sha256": d}} for n, d in inputs],
        "verificationResult": status,
        "verifiedLevels": [],  # the gate verifies a policy, not SLSA track levels
        "slsaVersion": "1.0",
    }
    # in-toto-attestation 0.9.3's proto has verified_levels as a string, the spec an array:
    # check the rest of the predicate against the proto.
    checked = {k: v for k, v in predicate.items() if k != "verifiedLevels"}
    json_format.ParseDict(checked, vsa_pb2.VerificationSummary())
    return statement(subjects, SLSA_VSA, predicate)


def _sslib_key(public_pem: str, keyid: str) -> SSlibKey:
    public = serialization.load_pem_public_key(public_pem.encode("ascii"))
    return SSlibKey.from_crypto(public, keyid=keyid)


def sign_envelope(stmt: dict, signer: Signer) -> dict:
    """A DSSE envelope over the statement's JSON, signed with the release key."""
    envelope = Envelope(json.dumps(stmt, sort_keys=True).encode("utf-8"), PAYLOAD_TYPE, {})
    crypto = CryptoSigner(signer.private_key, _sslib_key(signer.public_pem, signer.fingerprint))
    envelope.sign(crypto)
    return envelope.to_dict()


def open_envelope(path: Path, public_pem: str, keyid: str) -> dict:
    """The statement of a DSSE envelope file whose signature verifies; raises otherwise."""
    envelope = Envelope.from_dict(json.loads(path.read_text(encoding="utf-8")))
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ValueError(f"payload type {envelope.payload_type!r}, not {PAYLOAD_TYPE}")
    envelope.verify([_sslib_key(public_pem, keyid)], 1)
    return json.loads(envelope.payload)
