"""The exam signature: a detached JWS over the canonical response, verified, and any
changed byte of the response or of the JWS detected."""
from __future__ import annotations

import base64
import copy
import datetime as dt

import pytest
from joserfc.jwk import ECKey, RSAKey

from plugin.adapters import signing_key
from plugin.core import practitioner, signature
from plugin.core.signature import SignatureError
from plugin.errors import InputError

AUTHENTICATED = dt.datetime(2026, 12, 6, 9, 14, 5, tzinfo=dt.timezone.utc)
SIGNED = dt.datetime(2026, 12, 6, 9, 14, 9, tzinfo=dt.timezone.utc)
RESPONSE = {
    "resourceType": "QuestionnaireResponse", "id": "exam-1",
    "meta": {"versionId": "1", "lastUpdated": "2026-12-06T09:14:09Z"},
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
    "identifier": {"system": "http://posterior-thigh-exam.org/fhir/id/questionnaire-response",
                   "value": "exam-1"},
    "questionnaire":
        "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam|1.0.0",
    "status": "completed", "subject": {"reference": "Patient/p-1"},
    "authored": "2026-12-06T09:14:09Z",
    "author": {"reference": "Practitioner/u-1", "display": "Dr Ann Lee"},
    "item": [{"linkId": "slr.left.angle", "answer": [{"valueDecimal": 45.5}]},
             {"linkId": "note",
              "answer": [{"valueString": "Ólafsdóttir – sitting ≥ 20 min"}]}],
}


@pytest.fixture(scope="module", params=["ES256", "RS256"])
def key(request):
    if request.param == "ES256":
        return ECKey.generate_key("P-256", private=True, auto_kid=True)
    return RSAKey.generate_key(2048, private=True, auto_kid=True)


def _sign(key, response=RESPONSE):
    return signature.sign(response, key=key, username="alee", display="Dr Ann Lee",
                          practitioner_id="u-1", authenticated_at=AUTHENTICATED,
                          signed_at=SIGNED)


def _jwks(key):
    return signing_key.public_jwks(key)


def test_a_signature_verifies_and_names_who_signed_when(key) -> None:
    element = _sign(key)
    claims = signature.verify(RESPONSE, element, _jwks(key))
    assert (claims.username, claims.display, claims.practitioner) == \
        ("alee", "Dr Ann Lee", "Practitioner/u-1")
    assert (claims.authenticated_at, claims.signed_at) == (AUTHENTICATED, SIGNED)
    assert claims.kid == key.thumbprint()
    assert claims.content_sha256 == signature.digest(signature.canonical(RESPONSE))


def test_the_element_is_a_complete_author_signature(key) -> None:
    element = _sign(key)
    assert element["type"] == [{"system": "urn:iso-astm:E1762-95:2013",
                                "code": "1.2.840.10065.1.12.1.1",
                                "display": "Author's Signature"}]
    assert element["when"] == "2026-12-06T09:14:09Z"
    assert element["who"] == {"reference": "Practitioner/u-1", "display": "Dr Ann Lee"}
    assert element["sigFormat"] == "application/jose"
    header, payload, sig = base64.b64decode(element["data"]).decode("ascii").split(".")
    assert payload == "" and header and sig  # detached: RFC 7515 Appendix F
    decoded = signature.jws.extract_compact(
        f"{header}..{sig}".encode(), signature.canonical(RESPONSE),
        signature._registry()).headers()
    assert decoded["alg"] == ("ES256" if isinstance(key, ECKey) else "RS256")
    assert decoded["kid"] == key.thumbprint()


def test_canonical_json_is_rfc8785_without_id_meta_and_text() -> None:
    content = signature.canonical(RESPONSE)
    assert content.startswith(b'{"author":{"display":"Dr Ann Lee"')  # keys sorted, no spaces
    assert b'"id"' not in content and b'"meta"' not in content and b'"text"' not in content
    assert "Ólafsdóttir".encode() in content  # UTF-8, not \\u escapes
    # a copy another server stored (its own id, meta and narrative) signs the same
    stored = dict(RESPONSE, id="ehr-77", meta={"versionId": "3"}, text={"status": "empty"})
    assert signature.canonical(stored) == content
    assert signature.canonical({**RESPONSE, "item": RESPONSE["item"][::-1]}) != content


@pytest.mark.parametrize("change", [
    lambda r: r["item"][0]["answer"][0].update(valueDecimal=45.6),
    lambda r: r["item"][1]["answer"][0].update(valueString="Olafsdottir – sitting ≥ 20 min"),
    lambda r: r.update(status="amended"),
    lambda r: r["subject"].update(reference="Patient/p-2"),
    lambda r: r["author"].update(display="Dr Bob"),
    lambda r: r.update(extra=True),
], ids=["decimal", "one-character", "status", "subject", "author", "added-element"])
def test_a_changed_response_is_detected(key, change) -> None:
    element = _sign(key)
    changed = copy.deepcopy(RESPONSE)
    change(changed)
    with pytest.raises(SignatureError, match="has changed since it was signed"):
        signature.verify(changed, element, _jwks(key))


def test_every_changed_byte_of_the_jws_is_detected(key) -> None:
    element = _sign(key)
    token = base64.b64decode(element["data"]).decode("ascii")
    for at in range(0, len(token), max(1, len(token) // 40)):
        if token[at] == ".":
            continue
        flipped = token[:at] + ("B" if token[at] != "B" else "C") + token[at + 1:]
        tampered = dict(element, data=base64.b64encode(flipped.encode()).decode())
        with pytest.raises(SignatureError):
            signature.verify(RESPONSE, tampered, _jwks(key))


def test_the_element_must_say_what_the_jws_signed(key) -> None:
    element = _sign(key)
    with pytest.raises(SignatureError, match="Signature.who"):
        signature.verify(RESPONSE, {**element, "who": {"reference": "Practitioner/u-2"}},
                         _jwks(key))
    with pytest.raises(SignatureError, match="Signature.when"):
        signature.verify(RESPONSE, {**element, "when": "2026-12-06T10:00:00Z"}, _jwks(key))
    with pytest.raises(SignatureError, match="sigFormat"):
        signature.verify(RESPONSE, {**element, "sigFormat": "application/signature+xml"},
                         _jwks(key))
    with pytest.raises(SignatureError, match="not base64"):
        signature.verify(RESPONSE, {**element, "data": "%%%"}, _jwks(key))


def test_another_key_is_refused(key) -> None:
    other = ECKey.generate_key("P-256", private=True, auto_kid=True)
    with pytest.raises(SignatureError, match="key this service does not hold"):
        signature.verify(RESPONSE, _sign(key), _jwks(other))


def test_the_practitioner_carries_name_and_identifier() -> None:
    assert practitioner.build("u-1", "Dr Ann Lee", "http://hl7.org/fhir/sid/us-npi|1234567893") == {
        "resourceType": "Practitioner", "id": "u-1", "active": True,
        "name": [{"text": "Dr Ann Lee"}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}]}
    assert "identifier" not in practitioner.build("u-1", "Dr Ann Lee")


@pytest.mark.parametrize("identifier", ["1234", "|1234", "urn:x|", "no system|1"])
def test_a_malformed_identifier_is_refused(identifier) -> None:
    with pytest.raises(InputError, match="SYSTEM|VALUE"):
        practitioner.build("u-1", "Dr Ann Lee", identifier)
