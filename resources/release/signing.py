"""OpenSSF model-signing (key mode, offline) over a whole release directory.

The signature file is the one path left out of the manifest, recorded in it as ignored, so the
stock `model_signing verify key DIR --signature DIR/model.sig --public_key ...` accepts the
directory. Git paths are not ignored: a .gitignore slipped into a release is an extra file.
"""

from __future__ import annotations

from pathlib import Path

from model_signing import hashing, signing, verifying

SIGNATURE = "model.sig"


def _hashing() -> hashing.Config:
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)


def sign_directory(directory: Path, private_key: Path) -> Path:
    """Sign every file under ``directory``; the signature goes to directory/model.sig."""
    signature = directory / SIGNATURE
    config = signing.Config().use_elliptic_key_signer(private_key=private_key)
    config.set_hashing_config(_hashing()).sign(directory, signature)
    return signature


def verify_directory(directory: Path, public_key: Path) -> str | None:
    """None when the signature verifies and every file matches it; else what is wrong."""
    signature = directory / SIGNATURE
    if not signature.exists():
        return f"no model-signing signature at {signature}"
    config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    try:
        config.set_hashing_config(_hashing()).verify(directory, signature)
    except Exception as err:  # model-signing raises ValueError and crypto errors alike
        return str(err) or type(err).__name__
    return None
