"""OpenSSF model-signing (key mode, offline) over a whole release directory.

The signature file is the one path left out of the manifest, recorded in it as ignored, so the
stock `model_signing verify key DIR --signature DIR/model.sig --public_key ...` accepts the
directory. Git paths are not ignored: a .gitignore slipped into a release is an extra file.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from model_signing import hashing, signing, verifying

from resources.core.storage import file_sha256

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


def signed_files(directory: Path) -> dict[str, str]:
    """The manifest inside the signature: file name -> sha256 (read, not verified)."""
    bundle = json.loads((directory / SIGNATURE).read_text(encoding="utf-8"))
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}


def file_differences(directory: Path) -> list[str]:
    """Each file changed, missing or extra against the signed manifest, by name."""
    signed = signed_files(directory)
    present = {
        str(p.relative_to(directory)): p
        for p in directory.rglob("*")
        if p.is_file() and p.name != SIGNATURE
    }
    changed = sorted(
        n for n in signed.keys() & present.keys() if file_sha256(present[n]) != signed[n]
    )
    missing = sorted(signed.keys() - present.keys())
    extra = sorted(present.keys() - signed.keys())
    return (
        [f"changed: {n}" for n in changed]
        + [f"missing: {n}" for n in missing]
        + [f"extra: {n}" for n in extra]
    )
