"""A CDS client for tests: RS384 and ES384 key pairs made at test time, and signed JWTs.

Keys are generated per test session (RSA 2048 takes ~50 ms), never stored in the
repository; ``jwks()`` is the public half as ``CDS_HOOKS_CLIENTS`` expects it.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

ISSUER = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"


class CdsClient:
    """An EHR's signing keys: ``sign`` makes the Authorization JWT of one call."""

    def __init__(self, iss: str = ISSUER) -> None:
        self.iss = iss
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
        self.ec = ECKey.generate_key("P-384", parameters={"kid": "ec-1"})

    def jwks(self) -> dict[str, Any]:
        """The public keys, as a JWK Set."""
        return KeySet([self.rsa, self.ec]).as_dict(private=False)

    def sign(self, aud: str | list[str], *, alg: str = "RS384", lifetime: int = 300,
             header: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
             **claims: Any) -> str:
        """A JWT for ``aud``; ``claims`` override the defaults, ``drop`` removes some."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.iss, "aud": aud, "iat": now,
                                   "exp": now + lifetime, "jti": str(uuid.uuid4())}
        payload.update(claims)
        for name in drop:
            payload.pop(name, None)
        key: Any = self.rsa if alg.startswith("RS") else self.ec
        head = {"alg": alg, "typ": "JWT", "kid": key.kid}
        if alg.startswith("HS"):  # an attacker's symmetric token
            key = OctKey.generate_key(256)
            head["kid"] = "hmac"
        head.update(header or {})
        return jwt.encode(head, payload, key, algorithms=[alg])
