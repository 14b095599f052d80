"""ECDSA P-256 signatures: the one signature scheme of assay.

P-256 because OpenSSF model-signing's key mode takes only ECDSA P-256/384 keys, and one key
signs everything: the model-signing signature, the in-toto envelopes, ledger checkpoints and
revocation lists. A key's fingerprint is the sha256 of its DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

CURVE = ec.SECP256R1()
ALGORITHM = ec.ECDSA(hashes.SHA256())


class Signer:
    """A private key that signs bytes; knows its public key's PEM and fingerprint."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise ValueError("signing keys must be ECDSA P-256 (model-signing takes no other)")
        self.private_key = private_key
        self.public_pem = public_pem(private_key.public_key())
        self.fingerprint = fingerprint(self.public_pem)

    @classmethod
    def generate(cls) -> Signer:
        return cls(ec.generate_private_key(CURVE))

    @classmethod
    def load(cls, path: str | Path) -> Signer:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        return cls(key)  # type: ignore[arg-type]

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> str:
        """A base64 DER ECDSA signature over ``data``."""
        return base64.b64encode(self.private_key.sign(data, ALGORITHM)).decode("ascii")


def public_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def fingerprint(pem: str) -> str:
    """sha256 hex of the DER SubjectPublicKeyInfo of a PEM public key."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def verify_signature(pem: str, data: bytes, signature: str) -> bool:
    """True when ``signature`` (base64 DER) is the key's signature over ``data``."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(base64.b64decode(signature), data, ALGORITHM)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
