"""The CapabilityStatement: exactly what this server implements, nothing more.

Integrators read it to decide what to call, so it lists only the interactions, search
parameters and operations that the FHIR API really serves; anything added to the API is
added here in the same change. Built from plain data so a test can validate it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .fhir_models import FHIR_VERSION

if TYPE_CHECKING:  # the KnowledgeBase is passed in; the core never loads it
    from ..knowledge import KnowledgeBase

EXTRACT = "http://hl7.org/fhir/uv/sdc/OperationDefinition/QuestionnaireResponse-extract"
#: This server's own operation (decision support over an exam).
ASSESS = "http://posterior-thigh-exam.org/fhir/OperationDefinition/QuestionnaireResponse-assess"
#: SDC $populate (Questionnaire, type and instance level).
POPULATE = "http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-populate"
SOFTWARE = "Posterior thigh exam plugin"
#: The canonical search parameters both definition types support (FHIR "conformance-*").
SEARCH_PARAMS = (
    {"name": "url", "definition": "http://hl7.org/fhir/SearchParameter/conformance-url",
     "type": "uri", "documentation": "Canonical URL; 'url|version' is accepted too."},
    {"name": "version",
     "definition": "http://hl7.org/fhir/SearchParameter/conformance-version",
     "type": "token", "documentation": "Business version of the resource."},
)
_QR_PARAM = "http://hl7.org/fhir/SearchParameter/QuestionnaireResponse-"
#: The search parameters over the stored exams' current QuestionnaireResponses.
RECORD_SEARCH_PARAMS = (
    {"name": "patient", "definition": _QR_PARAM + "patient", "type": "reference",
     "documentation": "Patient/<id>, the id, or the absolute URL on this server."},
    {"name": "subject", "definition": _QR_PARAM + "subject", "type": "reference",
     "documentation": "Patient/<id> (the only subjects stored here) or the id."},
    {"name": "status", "definition": _QR_PARAM + "status", "type": "token",
     "documentation": "in-progress (never signed), completed (signed once) or amended."},
    {"name": "authored", "definition": _QR_PARAM + "authored", "type": "date",
     "documentation": "Prefixes eq, ne, lt, le, gt, ge, sa, eb (not ap); a value without "
                      "a timezone is read as UTC."},
)

_OBS_PARAM = "http://hl7.org/fhir/SearchParameter/"
#: The search parameters over the signed exams' Observations (patient or subject required).
OBSERVATION_SEARCH_PARAMS = (
    {"name": "patient", "definition": _OBS_PARAM + "clinical-patient", "type": "reference",
     "documentation": "Required (or subject): Patient/<id>, the id, or the absolute URL on "
                      "this server; commas OR."},
    {"name": "subject", "definition": _OBS_PARAM + "Observation-subject", "type": "reference",
     "documentation": "Patient/<id> (the only subjects stored here) or the id."},
    {"name": "code", "definition": _OBS_PARAM + "clinical-code", "type": "token",
     "documentation": "code, system|code, |code (no system) or system|; matches any coding; "
                      "commas OR, repeats AND."},
    {"name": "date", "definition": _OBS_PARAM + "clinical-date", "type": "date",
     "documentation": "The effective time (the exam's signature): prefixes eq, ne, lt, le, "
                      "gt, ge, sa, eb (not ap); UTC when no timezone; commas OR, repeats AND "
                      "(e.g. date=ge2026-01-01&date=le2026-06-30)."},
    {"name": "_sort", "type": "string",  # a result parameter, like _count
     "documentation": "date (oldest first) or -date (newest first, the default); then by "
                      "exam and in form order."},
    {"name": "_count", "type": "number",  # a result parameter: R4 defines no SearchParameter
     "documentation": "Page size (default 50, at most 200); next links page."},
)

_AUDIT_PARAM = "http://hl7.org/fhir/SearchParameter/AuditEvent-"
#: The search parameters over the audit trail (admins only).
AUDIT_SEARCH_PARAMS = (
    {"name": "patient", "definition": _AUDIT_PARAM + "patient", "type": "reference",
     "documentation": "Patient/<id>, the id, or the absolute URL on this server; commas OR."},
    {"name": "agent", "definition": _AUDIT_PARAM + "agent", "type": "reference",
     "documentation": "The requesting user's username, or an API client's id; "
                      "commas OR."},
    {"name": "date", "definition": _AUDIT_PARAM + "date", "type": "date",
     "documentation": "When recorded: prefixes eq, ne, lt, le, gt, ge, sa, eb (not ap); "
                      "UTC when no timezone; repeats AND."},
    {"name": "_count", "type": "number",
     "documentation": "Page size (default 50, at most 200); next links page."},
)


#: SMART's extension naming the OAuth endpoints (read by clients such as fhirclient).
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def build(kb: KnowledgeBase, *, version: str, base_url: str, date: str,
          token_url: str | None = None,
          scopes: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> dict[str, Any]:
    """A CapabilityStatement for the API at ``base_url`` serving the knowledge in ``kb``.

    ``date`` is a FHIR date or dateTime; ``version`` is the plugin's. ``token_url``: the
    SMART Backend Services token endpoint (then ``rest.security`` names SMART-on-FHIR
    and the endpoint); ``scopes``: per resource type, (interaction or operation, scope)
    as the routes declare them, added to each resource's documentation.
    """
    statement = _statement(kb, version=version, base_url=base_url, date=date)
    rest = statement["rest"][0]
    if token_url:
        rest["security"] = {
            "extension": [{"url": OAUTH_URIS,
                           "extension": [{"url": "token", "valueUri": token_url}]}],
            "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR",
                                     "display": "SMART-on-FHIR"}]}],
            "description": (
                "A signed-in browser session, or an access token from the token endpoint "
                "(SMART Backend Services: client_credentials with a private_key_jwt "
                "assertion, RS384 or ES384; discovery at [base]/.well-known/"
                "smart-configuration). A token reaches a route only with the system/ "
                "scope it needs (SMART v2), listed per resource below.")}
    for resource in rest["resource"]:
        needs = (scopes or {}).get(resource["type"])
        if needs:
            note = "; ".join(f"{label} needs {scope}" for label, scope in needs)
            documentation = resource.get("documentation")
            resource["documentation"] = (f"{documentation} " if documentation else "") + \
                f"Access tokens: {note}."
    return statement


def _statement(kb: KnowledgeBase, *, version: str, base_url: str,
               date: str) -> dict[str, Any]:
    canonicals = sorted(form.canonical for form in kb.forms.values())
    proms = sorted(i.canonical for i in kb.instruments.values())
    for_proms = ("" if not proms else
                 "; for the outcome measures " + ", ".join(proms) + ", ")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": f"{SOFTWARE} team",
        "kind": "instance",
        "software": {"name": SOFTWARE, "version": version},
        "implementation": {"description": "Posterior thigh exam FHIR API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "resource": [
                {**_definition("Questionnaire"), "operation": [{
                    "name": "populate", "definition": POPULATE,
                    "documentation": (
                        "Type level (POST [base]/Questionnaire/$populate, questionnaire as "
                        "valueCanonical, valueReference or resource) and instance level "
                        "(POST [base]/Questionnaire/<id>/$populate) for "
                        + ", ".join(canonicals) + ". Takes subject (required), context "
                        "patient (a Patient, or a Reference to one stored here) and encounter, "
                        "and local; returns response, an in-progress QuestionnaireResponse "
                        "with patient.age-years from the Patient's birthDate on today's date, "
                        "and issues (warnings) for what could not be filled"
                        + (for_proms + "an empty in-progress response for the subject "
                           "(nothing is prefilled for the patient)" if proms else "")
                        + ".")}]},
                _definition("CodeSystem"),
                {**_definition("StructureDefinition"), "documentation": (
                    "The definitions of this server's own extensions (on "
                    "QuestionnaireResponse.item), resolvable by their url.")},
                {"type": "QuestionnaireResponse",
                 "documentation": (
                     "The exams stored on this server, id = the exam's record id. Read gives "
                     "the current version: the latest signed revision (versionId = revision "
                     "number, kept for good) or, for an exam never signed, its in-progress "
                     "draft (versionId draft-<n>, not kept once superseded). Search: "
                     "repeated parameters AND, comma-separated values OR; unsupported "
                     "parameters are refused unless Prefer: handling=lenient; _count "
                     "(default 50, at most 200) pages with next links."),
                 "interaction": [{"code": "read"}, {"code": "vread"},
                                 {"code": "history-instance"}, {"code": "search-type"}],
                 "versioning": "versioned", "readHistory": True,
                 "searchParam": [dict(p) for p in RECORD_SEARCH_PARAMS],
                 "operation": [{
                     "name": "extract", "definition": EXTRACT,
                     "documentation": (
                         "Type level only (POST [base]/QuestionnaireResponse/$extract): "
                         "observation-based extraction to a transaction Bundle, for responses "
                         "to " + ", ".join(canonicals) + "; with a subject, the Bundle also "
                         "carries the decision-support Conditions and ServiceRequests"
                         + (for_proms + "the response scored by this server (a client's "
                            "score is replaced) and one survey Observation per score"
                            if proms else "") + ".")},
                     {"name": "assess", "definition": ASSESS,
                      "documentation": (
                          "Type level only (POST [base]/QuestionnaireResponse/$assess), the same "
                          "inputs as $extract: decision support as a collection Bundle of "
                          "Conditions (verificationStatus differential) and draft "
                          "ServiceRequests (intent proposal) with the Observations they cite. "
                          "Needs a subject. Suggestions only; the clinician decides.")}]},
                {"type": "Patient", "interaction": [{"code": "read"}],
                 "documentation": "The patients the stored exams are about (read only)."},
                {"type": "Observation",
                 "documentation": (
                     "The coded findings of the signed exams, exactly as sent to the EHR in "
                     "the record Bundle, stored as each revision was signed (search and read "
                     "find each exam's current signed revision's: drafts have none, an "
                     "amended exam shows the amended revision's), with references to "
                     "QuestionnaireResponse/<exam id> and Patient/<id> here. id = <exam id>-"
                     "<16 hex digits>, stable across amendments; versionId = the revision "
                     "number, every revision's version kept (vread); read of an id the "
                     "current revision no longer records is 410. Search needs patient or "
                     "subject; unsupported parameters are refused unless Prefer: "
                     "handling=lenient."),
                 "interaction": [{"code": "read"}, {"code": "vread"},
                                 {"code": "search-type"}],
                 "versioning": "versioned",
                 "searchParam": [dict(p) for p in OBSERVATION_SEARCH_PARAMS]},
                {"type": "Practitioner", "interaction": [{"code": "read"}],
                 "documentation": (
                     "The clinicians who sign exams (users holding the clinician role), as "
                     "named by QuestionnaireResponse.author, Provenance.agent.who and "
                     "Provenance.signature.who, with the identifier the organisation gave "
                     "them (read only).")},
                {"type": "AuditEvent",
                 "documentation": (
                     "The audit trail (IHE BALP shaped): who read or changed which "
                     "patient's record, when, from where, and the outcome; newest first. "
                     "For the admin role (a browser session) or a token with the "
                     "AuditEvent scopes; each search or read is itself audited."),
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [dict(p) for p in AUDIT_SEARCH_PARAMS]},
            ],
        }],
    }


def _definition(resource_type: str) -> dict[str, Any]:
    return {"type": resource_type,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [dict(p) for p in SEARCH_PARAMS]}
