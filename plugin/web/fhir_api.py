"""The FHIR API: metadata, the definitions (Questionnaire, CodeSystem, the
StructureDefinitions of our extensions) and the operations
(SDC Questionnaire ``$populate``, QuestionnaireResponse ``$extract``, our ``$assess``).

A thin edge: it parses the request, hands plain data to the core (``pipeline``,
``bundle``, ``populate``, ``capability``) and renders the result. Every refusal is raised
as a PluginError and rendered once, as an OperationOutcome, by ``web.errors``. The stored
exams (QuestionnaireResponse, Patient, Observation) are served by ``fhir_records``, a
blueprint nested in this one; the request conventions both follow live in ``fhir_rest``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from .. import __version__
from ..core import bundle, capability, fhir_models, outcome, patient as patient_mod
from ..record import pipeline
from ..core import populate as populate_mod
from ..core.questionnaire import Form
from ..errors import InputError, NotFoundError
from . import api_access, fhir_audit, fhir_practitioner, fhir_prom, fhir_records, oauth_token
from .audit import read_of
from .auth import requires_scope
from .errors import fhir_response
from .fhir_rest import (base_url, bundle as make_bundle, json_body, kb, only_json,
                        parameter_parts, part_resource, patient_id, register_converter,
                        search_args, store)

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
# registered before the routes (deferred in order), on the app's URL map
bp.record_once(register_converter)
bp.before_request(only_json)  # runs for the nested records blueprint too
bp.register_blueprint(fhir_records.bp)
bp.register_blueprint(fhir_audit.bp)
bp.register_blueprint(fhir_practitioner.bp)

#: SDC $extract inputs (``patient`` is this server's extension: the record's subject).
EXTRACT_PARAMETERS = ("questionnaire-response", "questionnaire", "patient")
#: SDC $populate inputs we read (``local`` is accepted: we only ever use what is given).
POPULATE_PARAMETERS = ("questionnaire", "subject", "context", "local")
#: The launch contexts $populate uses; others are reported and ignored.
POPULATE_CONTEXTS = ("patient", "encounter")
SEARCH_PARAMETERS = ("url", "version", "_format")


@bp.get("/metadata")
def metadata() -> Response:
    """The CapabilityStatement (``GET [base]/metadata``)."""
    return fhir_response(capability.build(
        kb(), version=__version__, base_url=base_url(),
        date=dt.datetime.now(dt.timezone.utc).date().isoformat(),
        token_url=oauth_token.token_url(),
        scopes=api_access.documentation(current_app)))


def _published() -> dict[str, Mapping[str, Any]]:
    """The exam form and the scored instruments (PROMs), by id: a renderer fetches a
    PROM from here, copyright statement included, to show and score it itself."""
    return {**{i.id: i.resource for i in kb().instruments.values()},
            **{f.id: f.resource for f in kb().forms.values()}}


@bp.get("/Questionnaire")
def search_questionnaires() -> Response:
    return _search("Questionnaire", list(_published().values()))


@bp.get("/Questionnaire/<fhir_id:id_>")
def read_questionnaire(id_: str) -> Response:
    """The Questionnaire exactly as loaded from ``questionnaires/<id>.json``."""
    resource = _published().get(id_)
    if resource is None:
        raise NotFoundError(f"Questionnaire/{id_} is not known to this server.")
    return fhir_response(dict(resource))


@bp.get("/CodeSystem")
def search_code_systems() -> Response:
    return _search("CodeSystem", list(kb().code_systems.values()))


@bp.get("/CodeSystem/<id_>")
def read_code_system(id_: str) -> Response:
    return _read("CodeSystem", kb().code_systems, id_)


@bp.get("/StructureDefinition")
def search_structure_definitions() -> Response:
    """Our extensions' definitions, searchable by ``url`` so a receiver meeting one of
    them in a QuestionnaireResponse can resolve it."""
    return _search("StructureDefinition", list(kb().structure_definitions.values()))


@bp.get("/StructureDefinition/<fhir_id:id_>")
def read_structure_definition(id_: str) -> Response:
    return _read("StructureDefinition", kb().structure_definitions, id_)


def _read(resource_type: str, held: Any, id_: str) -> Response:
    """A definitional resource of the knowledge by id (404 OperationOutcome if unknown)."""
    resource = held.get(id_)
    if resource is None:
        raise NotFoundError(f"{resource_type}/{id_} is not known to this server.")
    return fhir_response(dict(resource))


@bp.post("/QuestionnaireResponse/$extract")
@requires_scope("QuestionnaireResponse", "c")
def extract() -> Response:
    """SDC $extract at type level; also takes a bare QR or the plain answers format.

    Answers SDC-style: ``Parameters`` with ``return`` (the transaction Bundle) and, when
    no answer maps to an Observation, ``issues`` (a warning). Nothing is stored.
    """
    data, patient = _exam_input()
    instrument = fhir_prom.instrument_answered(data)
    if instrument is not None:
        return fhir_prom.extract(instrument, data, patient)
    result = pipeline.extract(kb(), data, patient=patient,
                              now=dt.datetime.now(dt.timezone.utc), plugin_version=__version__)
    parameters: list[dict[str, Any]] = [{"name": "return", "resource": result}]
    if bundle.extracted_nothing(result):
        parameters.append({"name": "issues", "resource": outcome.information(
            bundle.NOTHING_EXTRACTED, severity="warning")})
    elif not any(e["resource"]["resourceType"] == "QuestionnaireResponse"
                 and "subject" in e["resource"] for e in result["entry"]):
        parameters.append({"name": "issues", "resource": outcome.information(
            pipeline.NO_SUBJECT, severity="information")})
    return fhir_response({"resourceType": "Parameters", "parameter": parameters})


@bp.post("/QuestionnaireResponse/$assess")
@requires_scope("QuestionnaireResponse", "c")
def assess() -> Response:
    """Decision support over an exam: the same inputs as $extract; returns Parameters
    with ``return``, a collection Bundle of the suggested Conditions and draft
    ServiceRequests plus the Observations they cite. Nothing is stored."""
    data, patient = _exam_input()
    now = dt.datetime.now(dt.timezone.utc)
    exam = pipeline.exam_from_input(kb(), data, patient=patient, now=now)
    if exam.context.subject is None:
        raise InputError(pipeline.NO_SUBJECT, status=422, code="required",
                         expression="QuestionnaireResponse.subject")
    result = bundle.collection(pipeline.record(kb(), exam, plugin_version=__version__,
                                               recorded=now), ("Condition", "ServiceRequest"))
    return fhir_response({"resourceType": "Parameters",
                          "parameter": [{"name": "return", "resource": result}]})


@bp.post("/Questionnaire/$populate")
@requires_scope("Patient", "r")
def populate_type() -> Response:
    """SDC $populate at type level: the Questionnaire is named in the Parameters."""
    instrument = fhir_prom.instrument_named(json_body())
    if instrument is None:
        return _populate(None)
    return fhir_prom.populate(instrument, _prom_subject())


@bp.post("/Questionnaire/<fhir_id:id_>/$populate")
@requires_scope("Patient", "r")
def populate_instance(id_: str) -> Response:
    """SDC $populate of ``Questionnaire/<id>``."""
    form = kb().forms.get(id_)
    if form is None and id_ in kb().instruments:
        return fhir_prom.populate(kb().instruments[id_], _prom_subject())
    if form is None:
        raise NotFoundError(f"Questionnaire/{id_} is not known to this server.")
    return _populate(form)


def _prom_subject() -> dict[str, Any] | None:
    """The required subject of a $populate of an outcome measure."""
    data = json_body()
    if not isinstance(data, Mapping) or data.get("resourceType") != "Parameters":
        raise InputError("$populate takes a Parameters resource (questionnaire, subject, "
                         "context, local).", expression="Parameters")
    parts = parameter_parts(data, POPULATE_PARAMETERS, repeatable=("context",))
    return _reference_value(parts, "subject", required=True)


def _populate(instance: Form | None) -> Response:
    """Parameters in (questionnaire, subject, context patient/encounter, local), SDC
    Parameters out: ``response`` (in-progress, prefilled, authored now) and, when
    something could not be filled or was ignored, ``issues`` (warnings). Nothing is
    stored."""
    data = json_body()
    if not isinstance(data, Mapping) or data.get("resourceType") != "Parameters":
        raise InputError("$populate takes a Parameters resource (questionnaire, subject, "
                         "context, local).", expression="Parameters")
    parts = parameter_parts(data, POPULATE_PARAMETERS, repeatable=("context",))
    form = _populate_form(parts, instance)
    subject = _reference_value(parts, "subject", required=True)
    local = parts.get("local", [{"valueBoolean": False}])[0].get("valueBoolean")
    if not isinstance(local, bool):  # accepted, and true anyway: we use only what is given
        raise InputError("Parameter 'local' must carry a valueBoolean.",
                         expression="Parameters.parameter.where(name='local')")
    patient, encounter, issues = _contexts(parts.get("context", []))
    if patient is None:  # a subject stored here is the patient
        patient = _stored_patient(subject, required=False)
    now = dt.datetime.now(dt.timezone.utc)
    result = populate_mod.populate(form, patient, on=now.date(), subject=subject,
                                   encounter=encounter,
                                   authored=now.isoformat(timespec="seconds"))
    problems = fhir_models.validate(result.response)
    if problems:  # from what was given: a subject or encounter that is no valid Reference
        raise InputError("The subject or encounter given is not a valid FHIR Reference.",
                         status=422, issues=[(None, "The subject or encounter given is not "
                                              f"a valid FHIR Reference: {p}")
                                             for p in problems])
    parameters: list[dict[str, Any]] = [{"name": "response", "resource": result.response}]
    issues += result.issues
    if issues:
        parameters.append({"name": "issues", "resource": outcome.outcome(
            [outcome.issue("warning", "informational", text) for text in issues])})
    return fhir_response({"resourceType": "Parameters", "parameter": parameters})


def _populate_form(parts: Mapping[str, Sequence[Mapping[str, Any]]],
                   instance: Form | None) -> Form:
    """The Questionnaire to populate: the instance's, or the ``questionnaire`` parameter's
    (a canonical, a Reference or the resource); both must agree when both are given."""
    where = "Parameters.parameter.where(name='questionnaire')"
    given = (parts.get("questionnaire") or [None])[0]
    if given is None:
        if instance is None:
            raise InputError("Parameter 'questionnaire' is required at type level (a "
                             "valueCanonical, a valueReference or the resource).",
                             expression=where, code="required")
        return instance
    if "resource" in given:
        form = _loaded_form(given["resource"], f"{where}.resource", "populated")
    elif isinstance(given.get("valueCanonical") or given.get("valueUri"), str):
        canonical = given.get("valueCanonical") or given.get("valueUri")
        form = _form_named(canonical, where, "populated", what=canonical)
    elif isinstance(given.get("valueReference"), Mapping):
        reference = given["valueReference"].get("reference")
        ref = reference.removeprefix(base_url() + "/") if isinstance(reference, str) else ""
        type_, _, id_ = ref.partition("/")
        form = kb().forms.get(id_) if type_ == "Questionnaire" and "/" not in id_ else None
        if form is None:
            form = _form_named(reference if isinstance(reference, str) else None, where,
                               "populated", what=reference)
    else:
        raise InputError("Parameter 'questionnaire' needs a valueCanonical, a "
                         "valueReference or a resource.", expression=where)
    if instance is not None and form is not instance:
        raise InputError(f"Parameter 'questionnaire' ({form.canonical}) is not "
                         f"Questionnaire/{instance.id}, the one being populated.",
                         status=422, expression=where, code="business-rule")
    return form


def _reference_value(parts: Mapping[str, Sequence[Mapping[str, Any]]], name: str, *,
                     required: bool) -> dict[str, Any] | None:
    where = f"Parameters.parameter.where(name='{name}')"
    part = (parts.get(name) or [None])[0]
    if part is None:
        if required:
            raise InputError(f"Parameter '{name}' (a valueReference) is required.",
                             expression=where, code="required")
        return None
    value = part.get("valueReference")
    if not isinstance(value, Mapping) or not value:
        raise InputError(f"Parameter '{name}' must carry a valueReference.",
                         expression=f"{where}.valueReference")
    return dict(value)


def _contexts(contexts: Sequence[Mapping[str, Any]],
              ) -> tuple[Mapping[str, Any] | None, dict[str, Any] | None, list[str]]:
    """(the Patient, the encounter Reference, notes on contexts not used) from the
    ``context`` parameters: each has parts ``name`` and ``content`` (a resource or a
    valueReference)."""
    patient: Mapping[str, Any] | None = None
    encounter: dict[str, Any] | None = None
    ignored: list[str] = []
    for n, context in enumerate(contexts):
        where = f"Parameters.parameter.where(name='context')[{n}]"
        parts = parameter_parts(context, ("name", "content"), key="part",
                                where=f"{where}.part")
        name_part, content = (parts.get("name") or [{}])[0], (parts.get("content") or [None])[0]
        name = next((name_part[k] for k in ("valueString", "valueCode", "valueId")
                     if isinstance(name_part.get(k), str)), None)
        if name is None or content is None:
            raise InputError("Each context needs a 'name' (valueString) and a 'content' "
                             "(a resource or a valueReference).", expression=where,
                             code="required")
        if name not in POPULATE_CONTEXTS:
            ignored.append(f"Context {name!r} was ignored: this Questionnaire uses "
                           f"{' and '.join(POPULATE_CONTEXTS)}.")
        elif name == "patient":
            patient = _patient_context(content, where)
        else:
            encounter = _encounter_context(content, where)
    return patient, encounter, ignored


def _patient_context(content: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    resource = content.get("resource")
    if resource is not None:
        return patient_mod.check(resource)
    found = _stored_patient(content.get("valueReference"), required=True)
    assert found is not None
    return found


def _stored_patient(reference: Any, *, required: bool) -> Mapping[str, Any] | None:
    """The Patient stored here that a Reference names; None (or a 422 when required)
    when it names none."""
    ref = reference.get("reference") if isinstance(reference, Mapping) else None
    id_ = patient_id(ref) if isinstance(ref, str) and ref.strip() else None
    if id_ is not None and (isinstance(ref, str) and "/" in ref):
        try:
            found = store().patient(id_)
        except NotFoundError:
            pass
        else:  # a stored patient's data goes into the answer: audited as its read
            read_of(f"Patient/{found.id}", found.id)
            return found.resource
    if required:
        raise InputError("Context 'patient' must be a Patient resource or a Reference to a "
                         "Patient stored on this server (Patient/<id>); this one is not.",
                         status=422, code="not-found",
                         expression="Parameters.parameter.where(name='context')")
    return None


def _encounter_context(content: Mapping[str, Any], where: str) -> dict[str, Any]:
    resource = content.get("resource")
    if isinstance(resource, Mapping):
        if resource.get("resourceType") != "Encounter" or not isinstance(resource.get("id"), str):
            raise InputError("Context 'encounter' must be an Encounter with an id (or a "
                             "Reference to one).", status=422, expression=f"{where}.part")
        return {"reference": f"Encounter/{resource['id']}"}
    reference = content.get("valueReference")
    if not isinstance(reference, Mapping) or not reference:
        raise InputError("Context 'encounter' must be an Encounter resource or a "
                         "valueReference.", expression=f"{where}.part")
    return dict(reference)


def _exam_input() -> tuple[Any, Any]:
    """The exam and the optional Patient of an $extract/$assess body: a Parameters
    resource, a bare QuestionnaireResponse, or plain answers."""
    data = json_body()
    if isinstance(data, Mapping) and data.get("resourceType") == "Parameters":
        return _extract_inputs(data)
    return data, None


def _search(resource_type: str, resources: Sequence[Mapping[str, Any]]) -> Response:
    """A searchset over the loaded resources, filtered by canonical ``url``/``version``.

    Unknown parameters are refused (400) unless ``Prefer: handling=lenient``.
    """
    search_args(SEARCH_PARAMETERS, resource_type)
    wanted: list[tuple[str, str | None]] = []
    for url in filter(None, request.args.getlist("url")):  # an empty value is no filter
        plain_url, _, version = url.partition("|")
        wanted.append((plain_url, version or None))
    versions = [v for v in request.args.getlist("version") if v]
    matches = [r for r in resources
               if all(r.get("url") == u and (v is None or r.get("version") == v)
                      for u, v in wanted)
               and all(r.get("version") == v for v in versions)]
    base = base_url()
    query = urlencode(list(request.args.items(multi=True)))
    return fhir_response(make_bundle(
        "searchset", len(matches),
        [{"relation": "self", "url": f"{base}/{resource_type}" + (f"?{query}" if query else "")}],
        [{"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": dict(r),
          "search": {"mode": "match"}} for r in matches]))


def _extract_inputs(parameters: Mapping[str, Any]) -> tuple[Any, Any]:
    """Pick the $extract inputs out of a Parameters resource: (response, patient).

    ``questionnaire`` is only checked: the response's own canonical chooses the
    Questionnaire, and it must be one this server loaded.
    """
    parts = parameter_parts(parameters, EXTRACT_PARAMETERS)
    response = part_resource(parts, "questionnaire-response")
    if response is None:
        raise InputError("Parameters must contain 'questionnaire-response' with a "
                         "QuestionnaireResponse.", expression="Parameters.parameter",
                         code="required")
    questionnaire = part_resource(parts, "questionnaire")
    if questionnaire is not None:
        _check_questionnaire(questionnaire, response)
    return response, part_resource(parts, "patient")


def _check_questionnaire(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> None:
    """Refuse a Questionnaire this server did not load, or one the response does not answer."""
    where = "Parameters.parameter.where(name='questionnaire').resource"
    prom = kb().instrument_for(questionnaire.get("url") or "") \
        if isinstance(questionnaire, Mapping) and isinstance(questionnaire.get("url"), str) \
        and questionnaire.get("resourceType") == "Questionnaire" else None
    form = prom or _loaded_form(questionnaire, where, "extracted")
    answered = response.get("questionnaire")
    if isinstance(answered, str) and answered and answered.partition("|")[0] != form.url:
        raise InputError(f"Parameter 'questionnaire' ({form.url}) is not the Questionnaire the "
                         f"response answers ({answered}).", status=422, expression=where,
                         code="business-rule")


def _loaded_form(questionnaire: Any, where: str, purpose: str) -> Form:
    """The loaded Form a Questionnaire resource is (by its url and version); 422 when it
    is not one this server loaded."""
    if not isinstance(questionnaire, Mapping) or \
            questionnaire.get("resourceType") != "Questionnaire":
        got = questionnaire.get("resourceType") if isinstance(questionnaire, Mapping) else None
        raise InputError(f"Parameter 'questionnaire' must be a Questionnaire, got {got!r}.",
                         expression=where)
    url, version = questionnaire.get("url"), questionnaire.get("version")
    canonical = f"{url}|{version}" if isinstance(version, str) and version else url
    return _form_named(canonical if isinstance(canonical, str) else None, where, purpose,
                       what=canonical or "a Questionnaire without url")


def _form_named(canonical: str | None, where: str, purpose: str, *, what: Any) -> Form:
    form = kb().form_for(canonical) if canonical else None
    if form is None:
        loaded = ", ".join(sorted(f.canonical for f in kb().forms.values()))
        raise InputError(f"Only Questionnaires loaded on this server can be {purpose}; "
                         f"{what} is not one of them (loaded: {loaded}).", status=422,
                         expression=where, code="not-supported")
    return form
