"""The release signing key: where it lives, making it, loading it.

The key is ECDSA P-256 (model-signing's key mode takes no ed25519). It lives outside git:
$ASSAY_SIGNING_KEY, else params.yaml's release.signing_key (default .assay/keys/release.pem,
which .gitignore excludes). The private key file is 0600; the public key sits beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from resources.core.signing import Signer
from resources.core.storage import atomic_path

KEY_ENV = "ASSAY_SIGNING_KEY"


class MissingKeyError(FileNotFoundError):
    """No signing key where params or $ASSAY_SIGNING_KEY say; the message says how to make one."""


def key_path(root: Path, configured: str) -> Path:
    """$ASSAY_SIGNING_KEY, else the configured path (relative to the project root)."""
    chosen = Path(os.environ.get(KEY_ENV) or configured)
    return chosen if chosen.is_absolute() else (root / chosen).resolve()


def public_key_path(private: Path) -> Path:
    return private.with_name(private.stem + ".pub.pem")


def init_key(path: Path) -> tuple[Path, bool]:
    """Make a key pair at ``path`` unless one is there; (path, created)."""
    if path.exists():
        Signer.load(path)  # an unreadable or wrong-curve key is an error, not "already made"
        return path, False
    signer = Signer.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signer.private_pem())
    with atomic_path(public_key_path(path)) as tmp:
        tmp.write_text(signer.public_pem, encoding="ascii")
    return path, True


def load_signer(path: Path) -> Signer:
    """The signer at ``path``; MissingKeyError saying how to make one when there is none."""
    if not path.exists():
        raise MissingKeyError(
            f"no signing key at {path}: run `assay keys init` to make one (or set"
            f" ${KEY_ENV} or params.yaml release.signing_key to an ECDSA P-256 PEM key)"
        )
    return Signer.load(path)


def try_signer(path: Path) -> Signer | None:
    """The signer when a key exists, else None (checkpoints at the end of a run are skipped)."""
    return Signer.load(path) if path.exists() else None
