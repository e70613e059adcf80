"""The signing key: made once in the instance folder (0600) and reused, or configured."""
from __future__ import annotations

import os
import stat

import pytest
from joserfc.jwk import ECKey, RSAKey

from plugin.adapters import signing_key
from plugin.adapters.signing_key import SigningKeyError


def test_the_key_file_is_created_private_once_and_reused(tmp_path) -> None:
    instance = tmp_path / "instance"
    first = signing_key.load({}, instance)
    path = instance / "signing_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    again = signing_key.load({"SIGNING_KEY": ""}, instance)
    assert again.kid == first.kid == first.thumbprint()  # RFC 7638
    assert sorted(os.listdir(instance)) == ["signing_key.pem"]  # no temporary file left


def test_a_configured_pem_wins_and_writes_no_file(tmp_path) -> None:
    pem = RSAKey.generate_key(2048, private=True).as_pem(private=True).decode()
    key = signing_key.load({"SIGNING_KEY": pem}, tmp_path)
    assert isinstance(key, RSAKey) and key.kid == key.thumbprint()
    assert not (tmp_path / "signing_key.pem").exists()


def test_the_public_jwks_holds_no_private_part(tmp_path) -> None:
    jwks = signing_key.public_jwks(signing_key.load({}, tmp_path))
    (public,) = jwks["keys"]
    assert public["kty"] == "EC" and public["crv"] == "P-256" and "d" not in public
    assert public["kid"]


@pytest.mark.parametrize(("pem", "message"), [
    ("not a key", "no usable private key"),
    (ECKey.generate_key("P-256").as_pem(private=False).decode(), "no usable private key"),
    (ECKey.generate_key("P-384", private=True).as_pem(private=True).decode(), "P-256"),
])
def test_an_unusable_configured_key_is_refused(tmp_path, pem, message) -> None:
    with pytest.raises(SigningKeyError, match=message):
        signing_key.load({"SIGNING_KEY": pem}, tmp_path)
