"""The electronic signature of a signed exam: a detached JWS in ``Provenance.signature``.

21 CFR Part 11 asks that a signature be bound to its record (11.70) and name the signer,
the time and the meaning (11.50). FHIR R4 carries that in a Signature element
(datatypes.html#Signature, shared/fhir.md §10.2): ``type`` = ASTM E1762 "Author's
Signature" (the meaning), ``when``, ``who`` = the signer's Practitioner, ``sigFormat``
``application/jose`` and ``data`` = base64 of a *detached* JWS (RFC 7515 Appendix F)
over the canonical JSON of the signed QuestionnaireResponse.

**Canonical JSON** (``canonical``): RFC 8785 (JCS) of the response after removing its
root ``id``, ``meta`` and ``text``. Why those three: every server that stores a copy
gives it its own ``id`` and ``meta`` (versionId, lastUpdated, tags) and may generate a
narrative ``text``; none of them is what the clinician attested. This is FHIR's
"static" canonicalisation (json.html#canonical drops text and meta) and the CDex rule
(JCS after dropping root id and meta), both cited in shared/fhir.md §10.2. Everything
else, answers, subject, author, authored, status and identifier, is signed.

**The JWS** signs those bytes as its payload, which is then detached (``header..sig``).
Its protected header names the key (``kid``, the RFC 7638 thumbprint) and carries the
attestation as claims replicated into the header (RFC 7519 §5.3): ``sub`` the username,
``name`` the display name, ``fhirUser`` ``Practitioner/<id>``, ``auth_time`` when the
signer re-entered the password (NumericDate), ``iat`` when the service signed, and
``content_sha256`` (base64url SHA-256 of the canonical bytes: lets a verifier say
*what* changed). The claims are inside the signature, so none of them can be altered
either. The service attests: this authenticated clinician signed this content.

Pure: keys come in as joserfc keys, nothing is read or written here.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.registry import HeaderParameter

from ..errors import PluginError

ASTM_E1762 = "urn:iso-astm:E1762-95:2013"
AUTHORS_SIGNATURE = "1.2.840.10065.1.12.1.1"
SIG_FORMAT = "application/jose"
TARGET_FORMAT = "application/fhir+json"
#: Root elements left out of the signed bytes (see the module notes).
UNSIGNED = ("id", "meta", "text")
#: Names this canonicalisation in the header, so a later change of rule is detectable.
CANONICALIZATION = "RFC8785;without=id,meta,text"
ALGORITHMS = ("ES256", "RS256")

#: The claims the header carries beside ``alg`` and ``kid`` (joserfc refuses unknown
#: header parameters unless they are registered).
_CLAIMS = {
    "sub": HeaderParameter("username of the signer", "str", required=True),
    "name": HeaderParameter("display name of the signer", "str", required=True),
    "fhirUser": HeaderParameter("Practitioner/<id> of the signer", "str", required=True),
    "auth_time": HeaderParameter("re-authentication time (NumericDate)", "int", required=True),
    "iat": HeaderParameter("signing time (NumericDate)", "int", required=True),
    "content_sha256": HeaderParameter("base64url SHA-256 of the canonical content", "str",
                                      required=True),
    "canon": HeaderParameter("canonicalisation of the signed content", "str", required=True),
}


class SignatureError(PluginError):
    """A signature does not verify: the message says what does not match."""


@dataclass(frozen=True)
class Claims:
    """What a verified signature attests."""

    username: str
    display: str
    practitioner: str  # "Practitioner/<id>"
    authenticated_at: dt.datetime
    signed_at: dt.datetime
    content_sha256: str
    kid: str


def _registry() -> jws.JWSRegistry:
    registry = jws.JWSRegistry(header_registry=dict(_CLAIMS), algorithms=list(ALGORITHMS))
    # a complete exam is ~60 KB of canonical JSON and a display name may be long: the
    # library's defaults (128 000 / 512 bytes) are for tokens, not records
    registry.max_payload_length = 4 * 1024 * 1024
    registry.max_header_length = 8 * 1024
    return registry


def canonical(response: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: RFC 8785 JCS of the response without root id, meta, text."""
    content = {k: v for k, v in response.items() if k not in UNSIGNED}
    try:
        return rfc8785.dumps(content)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise SignatureError(f"the response cannot be canonicalised: {exc}") from exc


def algorithm(key: RSAKey | ECKey) -> str:
    """The JWS algorithm for a key: RS256 for RSA, ES256 for EC P-256; else refused."""
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ES256"
    raise SignatureError("the signing key must be RSA or EC P-256 (RS256 or ES256)")


def sign(response: Mapping[str, Any], *, key: RSAKey | ECKey, username: str, display: str,
         practitioner_id: str, authenticated_at: dt.datetime,
         signed_at: dt.datetime) -> dict[str, Any]:
    """The complete R4 ``Provenance.signature`` element for ``response``.

    ``authenticated_at`` is when the signer re-entered the password for this signature
    (21 CFR 11.200); ``signed_at`` becomes ``Signature.when`` and the JWS ``iat``.
    """
    content = canonical(response)
    practitioner = f"Practitioner/{practitioner_id}"
    header = {"alg": algorithm(key), "kid": key.thumbprint(), "sub": username,
              "name": display, "fhirUser": practitioner,
              "auth_time": _numeric(authenticated_at), "iat": _numeric(signed_at),
              "content_sha256": digest(content), "canon": CANONICALIZATION}
    compact = jws.serialize_compact(header, content, key, registry=_registry())
    detached = jws.detach_content(compact)
    return {
        "type": [{"system": ASTM_E1762, "code": AUTHORS_SIGNATURE,
                  "display": "Author's Signature"}],
        "when": _instant(signed_at),
        "who": {"reference": practitioner, "display": display},
        "targetFormat": TARGET_FORMAT,
        "sigFormat": SIG_FORMAT,
        "data": base64.b64encode(detached.encode("ascii")).decode("ascii"),
    }


def verify(response: Mapping[str, Any], signature_element: Mapping[str, Any],
           public_jwks: Mapping[str, Any] | KeySet) -> Claims:
    """The claims of a valid signature of ``response``; SignatureError on any change
    to the response's signed content, the JWS, or the element's who/when/type."""
    if signature_element.get("sigFormat") != SIG_FORMAT:
        raise SignatureError(f"sigFormat is not {SIG_FORMAT}: not a signature this service "
                             "makes")
    token = _detached_token(signature_element.get("data"))
    content = canonical(response)
    keys = public_jwks if isinstance(public_jwks, KeySet) else _key_set(public_jwks)
    try:
        header = jws.extract_compact(token.encode("ascii"), content, _registry()).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise SignatureError(f"the signature data is not a usable JWS: {exc}") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not any(k.kid == kid for k in keys):
        raise SignatureError(f"the signature was made with a key this service does not "
                             f"hold (kid {kid!r})")
    try:
        jws.deserialize_compact(token, keys, payload=content, registry=_registry())
    except JoseError as exc:
        if header.get("content_sha256") != digest(content):
            raise SignatureError("the QuestionnaireResponse has changed since it was "
                                 "signed") from exc
        raise SignatureError("the signature does not verify: the JWS has been altered") \
            from exc
    if header.get("canon") != CANONICALIZATION:
        raise SignatureError(f"unknown canonicalisation {header.get('canon')!r}")
    claims = Claims(username=header["sub"], display=header["name"],
                    practitioner=header["fhirUser"],
                    authenticated_at=_moment(header["auth_time"]),
                    signed_at=_moment(header["iat"]), content_sha256=header["content_sha256"],
                    kid=kid)
    _same_as_element(claims, signature_element)
    return claims


def digest(content: bytes) -> str:
    """base64url (unpadded) SHA-256 of ``content``."""
    raw = hashlib.sha256(content).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _same_as_element(claims: Claims, element: Mapping[str, Any]) -> None:
    """The element's readable parts must say what the signed header says."""
    who = element.get("who") if isinstance(element.get("who"), Mapping) else {}
    if who.get("reference") != claims.practitioner:
        raise SignatureError(f"Signature.who ({who.get('reference')!r}) is not the signer "
                             f"({claims.practitioner})")
    try:
        when = dt.datetime.fromisoformat(str(element.get("when")).replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError("Signature.when is not an instant") from None
    if when.tzinfo is None or _numeric(when) != _numeric(claims.signed_at):
        raise SignatureError("Signature.when is not the signing time the JWS attests")
    codes = {(c.get("system"), c.get("code")) for c in element.get("type") or []
             if isinstance(c, Mapping)}
    if (ASTM_E1762, AUTHORS_SIGNATURE) not in codes:
        raise SignatureError("Signature.type is not an Author's Signature")


def _detached_token(data: Any) -> str:
    try:
        token = base64.b64decode(str(data), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SignatureError("Signature.data is not base64 of a JWS") from None
    parts = token.split(".")
    if len(parts) != 3 or parts[1] != "":
        raise SignatureError("Signature.data is not a detached compact JWS (header..signature)")
    return token


def _key_set(jwks: Mapping[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(json.loads(json.dumps(jwks)))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignatureError(f"the public keys are not a JWKS: {exc}") from exc


def _numeric(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a signature time needs a timezone")
    return int(moment.timestamp())


def _moment(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc)


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat() \
        .replace("+00:00", "Z")
