import stat

import pytest

from resources.core.signing import Signer, fingerprint, verify_signature
from resources.release.keys import (
    KEY_ENV,
    MissingKeyError,
    init_key,
    key_path,
    load_signer,
    public_key_path,
)


def test_init_makes_a_private_p256_key_only_its_owner_reads(tmp_path):
    path, created = init_key(tmp_path / ".assay" / "keys" / "release.pem")
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    signer = load_signer(path)
    assert public_key_path(path).read_text() == signer.public_pem
    assert fingerprint(signer.public_pem) == signer.fingerprint
    assert verify_signature(signer.public_pem, b"x", signer.sign(b"x"))
    assert not verify_signature(signer.public_pem, b"y", signer.sign(b"x"))


def test_init_is_idempotent(tmp_path):
    path, _ = init_key(tmp_path / "k.pem")
    before = path.read_bytes()
    assert init_key(path) == (path, False)
    assert path.read_bytes() == before


def test_the_env_var_wins_over_params(tmp_path, monkeypatch):
    assert key_path(tmp_path, ".assay/keys/release.pem") == tmp_path / ".assay/keys/release.pem"
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "elsewhere.pem"))
    assert key_path(tmp_path, ".assay/keys/release.pem") == tmp_path / "elsewhere.pem"


def test_no_key_says_how_to_make_one(tmp_path):
    with pytest.raises(MissingKeyError, match="assay keys init"):
        load_signer(tmp_path / "none.pem")


def test_only_p256_keys_are_accepted():
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    with pytest.raises(ValueError, match="P-256"):
        Signer(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="P-256"):
        Signer(ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
