"""Sign-off: a clinician's name turns working answers into a locked, attributable record.

The first signature gives a ``completed`` QuestionnaireResponse, each later one an
``amended`` response carrying the same identifier (it is one record, revised), and
every signature a Provenance naming the signer, the time and, for an amendment, the
reason. Validation is the strict one: a draft with any problem cannot be signed.

A signer who signed in and re-entered the password (``Signer.attestation``) also gets
the electronic signature: ``Provenance.signature`` is a detached JWS over the response
exactly as stored (``core.signature``), naming the user and the time of the password
re-entry. ``python -m plugin verify`` checks it.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..core import layout, responses, signature
from ..core import terminology as t
from ..core.responses import Exam
from ..errors import InputError
from . import pipeline

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
#: Longest signer name or amendment reason kept (a name, a sentence or two; not a note).
MAX_TEXT = 500


@dataclass(frozen=True)
class Attestation:
    """What the service attests with its key: this user (``username``) re-entered the
    password at ``authenticated_at`` and signed. ``key`` is the service's private key."""

    username: str
    authenticated_at: dt.datetime
    key: Any


@dataclass(frozen=True)
class Signer:
    """Who signs: the signed-in user as a Practitioner ``reference`` with a display
    name. Without a reference (records made outside the service, e.g. tests of the
    pure sign-off) only the name is recorded."""

    display: str
    reference: str | None = None
    #: the Practitioner's identifier (``{"system", "value"}``), when the user has one
    identifier: Mapping[str, str] | None = None
    #: the signed-in user's attestation (re-entered password); None signs without a JWS
    attestation: Attestation | None = None

    def as_reference(self) -> dict[str, Any]:
        """The FHIR Reference naming the signer (author, Provenance agent)."""
        if self.reference is None:
            return {"display": self.display}
        result: dict[str, Any] = {"reference": self.reference, "type": "Practitioner"}
        if self.identifier:
            result["identifier"] = dict(self.identifier)
        result["display"] = self.display
        return result


@dataclass(frozen=True)
class Signed:
    """A signed revision: the exam, its response and the signature's Provenance."""

    exam: Exam
    response: dict[str, Any]
    provenance: dict[str, Any]


def sign(kb: Any, raw: Mapping[str, Any], *, record_id: str, patient: Mapping[str, Any],
         signer: Signer, signed_at: dt.datetime, revision: int,
         reason: str | None = None, encounter: Mapping[str, Any] | None = None,
         one_step: frozenset[str] = frozenset(), form: Any = None) -> Signed:
    """Validate ``raw`` strictly and sign it as revision ``revision`` (1 = first), in
    ``encounter`` (a Reference) when the exam belongs to one; ``one_step``: sections
    recorded in one step, marked on the signed response while they still hold;
    ``form``: the Questionnaire ``raw`` answers (default: the initial exam's)."""
    signer = replace(signer, display=text(signer.display, "signer", "Enter your name to sign."))
    if revision > 1:
        reason = text(reason, "reason", "An amendment needs a reason.")
    when = signed_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    exam = pipeline.exam_from_input(kb, dict(raw), patient=patient, now=signed_at, form=form)
    exam = replace(exam, context=replace(
        exam.context, status="completed" if revision == 1 else "amended", authored=when,
        author=signer.as_reference(), identifier=record_id,
        encounter=dict(encounter) if encounter else exam.context.encounter),
        one_step=frozenset(s for s in one_step
                           if layout.one_step_holds(exam.form, s, exam.answers)))
    qr = responses.build(exam)
    prov = provenance(record_id, signer=signer, recorded=when, revision=revision,
                      reason=reason)
    if signer.attestation is not None:
        if signer.reference is None or not signer.reference.startswith("Practitioner/"):
            raise ValueError("an attested signature needs the signer's Practitioner reference")
        prov["signature"] = [signature.sign(
            qr, key=signer.attestation.key, username=signer.attestation.username,
            display=signer.display, practitioner_id=signer.reference.split("/", 1)[1],
            authenticated_at=signer.attestation.authenticated_at, signed_at=signed_at)]
    return Signed(exam, qr, prov)


def provenance(record_id: str, *, signer: Signer, recorded: str, revision: int,
               reason: str | None) -> dict[str, Any]:
    """Who signed which revision of the record, when, and why (for an amendment)."""
    create = revision == 1
    result: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"type": "QuestionnaireResponse",
                    "identifier": {"system": t.ID_QUESTIONNAIRE_RESPONSE, "value": record_id},
                    "display": f"Exam record, revision {revision}"}],
        "recorded": recorded,
        "activity": {"coding": [{"system": DATA_OPERATION,
                                 "code": "CREATE" if create else "UPDATE",
                                 "display": "create" if create else "revise"}]},
        "agent": [{"type": {"coding": [{"system": t.PROVENANCE_PARTICIPANT_TYPE,
                                        "code": "author", "display": "Author"}]},
                   "who": signer.as_reference()}],
    }
    if reason:
        result["reason"] = [{"text": reason}]
    return result


def text(value: Any, field: str, missing: str) -> str:
    """A short required text from a form, trimmed; refused when blank or too long."""
    value = value.strip() if isinstance(value, str) else ""
    if not value:
        raise InputError(missing, expression=field, status=422, code="required")
    if len(value) > MAX_TEXT:
        raise InputError(f"At most {MAX_TEXT} characters.", expression=field, status=422,
                         code="too-long")
    return value
