"""The one check of every id token (single sign-on, EHR launch, step-up before a
signature): what OpenID Connect Core 3.1.3.7 requires, including what Authlib alone lets
through (a foreign ``aud`` with our ``azp``; an old ``auth_time``)."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from plugin.adapters import id_tokens

ISSUER = "https://login.hospital.example"
CLIENT = "posterior-thigh-exam"
KEY = RSAKey.generate_key(2048, parameters={"kid": "op-1"})
KEYS = KeySet.import_key_set({"keys": [KEY.as_dict(private=False)]})
NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


def _token(key=KEY, alg="RS256", **overrides):
    claims = {"iss": ISSUER, "sub": "u-1", "aud": CLIENT, "nonce": "n-1",
              "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 300,
              "auth_time": int(NOW.timestamp()) - 30, **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": "op-1"}, claims, key, algorithms=[alg])


def _verify(token, **options):
    return id_tokens.verify(token, KEYS, issuer=ISSUER, client_id=CLIENT,
                            nonce=options.pop("nonce", "n-1"), now=NOW, **options)


def test_a_good_token_gives_its_claims():
    claims = _verify(_token(fhirUser="https://ehr.example/fhir/Practitioner/9", name="Dr A"))
    assert (claims.subject, claims.fhir_user, claims.name) == (
        "u-1", "https://ehr.example/fhir/Practitioner/9", "Dr A")
    assert claims.auth_time == NOW - dt.timedelta(seconds=30)


@pytest.mark.parametrize(("overrides", "why"), [
    ({"aud": "another-app"}, "another application (aud)"),
    ({"aud": ["another-app"], "azp": CLIENT}, "another application (aud)"),
    ({"aud": [CLIENT, "another-app"]}, "authorized party"),
    ({"aud": CLIENT, "azp": "another-app"}, "another application (azp)"),
    ({"iss": "https://impostor.example"}, "another server"),
    ({"nonce": "n-2"}, "nonce"), ({"nonce": None}, "nonce"),
    ({"exp": int(NOW.timestamp()) - 3600}, "expired"),
    ({"exp": None}, "no expiry"), ({"sub": None}, "no subject"),
])
def test_a_token_failing_a_check_is_refused_saying_which(overrides, why):
    with pytest.raises(id_tokens.IdTokenError, match=re.escape(why)):
        _verify(_token(**overrides))


def test_a_shared_audience_is_accepted_when_we_are_the_authorized_party():
    assert _verify(_token(aud=[CLIENT, "another-app"], azp=CLIENT)).subject == "u-1"


def test_a_key_not_the_providers_or_a_shared_secret_does_not_verify():
    other = RSAKey.generate_key(2048, parameters={"kid": "op-1"})
    with pytest.raises(id_tokens.IdTokenError, match="signature"):
        _verify(_token(key=other))
    secret = OctKey.generate_key(256, parameters={"kid": "op-1"})
    with pytest.raises(id_tokens.IdTokenError, match="signature"):
        id_tokens.verify(_token(key=secret, alg="HS256"), KeySet([secret]), issuer=ISSUER,
                         client_id=CLIENT, nonce="n-1", now=NOW)


def test_a_re_authentication_needs_an_auth_time_after_it_was_asked_for():
    asked = NOW - dt.timedelta(seconds=10)
    assert _verify(_token(auth_time=int(NOW.timestamp()) - 5),
                   authenticated_after=asked).auth_time is not None
    with pytest.raises(id_tokens.IdTokenError, match="password again"):
        _verify(_token(auth_time=int(NOW.timestamp()) - 3600), authenticated_after=asked)
    with pytest.raises(id_tokens.IdTokenError, match="password again"):
        _verify(_token(auth_time=None), authenticated_after=asked)
