"""The FHIR API: definitions (Questionnaire, CodeSystem), metadata and SDC $extract.

A thin edge: it parses the request, hands plain data to the core (``pipeline``,
``bundle``, ``capability``) and renders the result. Every refusal is raised as a
PluginError and rendered once, as an OperationOutcome, by ``web.errors``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotAcceptable

from .. import __version__
from ..core import bundle, capability, outcome, pipeline
from ..errors import InputError, NotFoundError
from ..knowledge import EXTENSION_KEY, KnowledgeBase
from .errors import fhir_response

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
#: Request bodies we read; anything else is refused with 415.
JSON_TYPES = ("application/json", "application/fhir+json")
#: ``_format`` values that ask for what we serve (FHIR JSON); others get 406.
JSON_FORMATS = ("json", "application/json", "application/fhir+json")
#: SDC $extract inputs (``patient`` is this server's extension: the record's subject).
EXTRACT_PARAMETERS = ("questionnaire-response", "questionnaire", "patient")
SEARCH_PARAMETERS = ("url", "version", "_format")


def _kb() -> KnowledgeBase:
    return current_app.extensions[EXTENSION_KEY]


def _base_url() -> str:
    return (current_app.config.get("FHIR_BASE_URL") or request.url_root + "fhir").rstrip("/")


@bp.before_request
def _only_json() -> None:
    """Honour ``_format``: we serve FHIR JSON only, and say so rather than ignore it."""
    wanted = request.args.get("_format")
    if wanted is not None and wanted.split(";")[0].strip() not in JSON_FORMATS:
        raise NotAcceptable(f"_format={wanted} is not served; this server speaks FHIR JSON "
                            f"({', '.join(JSON_FORMATS)}).")


@bp.get("/metadata")
def metadata() -> Response:
    """The CapabilityStatement (``GET [base]/metadata``)."""
    return fhir_response(capability.build(
        _kb(), version=__version__, base_url=_base_url(),
        date=dt.datetime.now(dt.timezone.utc).date().isoformat()))


@bp.get("/Questionnaire")
def search_questionnaires() -> Response:
    return _search("Questionnaire", [f.resource for f in _kb().forms.values()])


@bp.get("/Questionnaire/<id_>")
def read_questionnaire(id_: str) -> Response:
    """The Questionnaire exactly as loaded from ``questionnaires/<id>.json``."""
    form = _kb().forms.get(id_)
    if form is None:
        raise NotFoundError(f"Questionnaire/{id_} is not known to this server.")
    return fhir_response(dict(form.resource))


@bp.get("/CodeSystem")
def search_code_systems() -> Response:
    return _search("CodeSystem", list(_kb().code_systems.values()))


@bp.get("/CodeSystem/<id_>")
def read_code_system(id_: str) -> Response:
    resource = _kb().code_systems.get(id_)
    if resource is None:
        raise NotFoundError(f"CodeSystem/{id_} is not known to this server.")
    return fhir_response(dict(resource))


@bp.post("/QuestionnaireResponse/$extract")
def extract() -> Response:
    """SDC $extract at type level; also takes a bare QR or the plain answers format.

    Answers SDC-style: ``Parameters`` with ``return`` (the transaction Bundle) and, when
    no answer maps to an Observation, ``issues`` (a warning). Nothing is stored.
    """
    data, patient = _exam_input()
    result = pipeline.extract(_kb(), data, patient=patient,
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
def assess() -> Response:
    """Decision support over an exam: the same inputs as $extract; returns Parameters
    with ``return``, a collection Bundle of the suggested Conditions and draft
    ServiceRequests plus the Observations they cite. Nothing is stored."""
    data, patient = _exam_input()
    now = dt.datetime.now(dt.timezone.utc)
    exam = pipeline.exam_from_input(_kb(), data, patient=patient, now=now)
    if exam.context.subject is None:
        raise InputError(pipeline.NO_SUBJECT, status=422, code="required",
                         expression="QuestionnaireResponse.subject")
    result = bundle.collection(pipeline.record(_kb(), exam, plugin_version=__version__,
                                               recorded=now), ("Condition", "ServiceRequest"))
    return fhir_response({"resourceType": "Parameters",
                          "parameter": [{"name": "return", "resource": result}]})


def _exam_input() -> tuple[Any, Any]:
    """The exam and the optional Patient of an $extract/$assess body: a Parameters
    resource, a bare QuestionnaireResponse, or plain answers."""
    data = _json_body()
    if isinstance(data, Mapping) and data.get("resourceType") == "Parameters":
        return _extract_inputs(data)
    return data, None


def _search(resource_type: str, resources: Sequence[Mapping[str, Any]]) -> Response:
    """A searchset over the loaded resources, filtered by canonical ``url``/``version``.

    Unknown parameters are refused (400), not ignored: a client that believes it
    filtered must not receive everything.
    """
    unknown = sorted(set(request.args) - set(SEARCH_PARAMETERS))
    if unknown:
        raise InputError(f"Unsupported search parameter(s): {', '.join(unknown)}; "
                         f"{resource_type} supports url and version.", code="not-supported")
    wanted: list[tuple[str, str | None]] = []
    for url in filter(None, request.args.getlist("url")):  # an empty value is no filter
        plain_url, _, version = url.partition("|")
        wanted.append((plain_url, version or None))
    versions = [v for v in request.args.getlist("version") if v]
    matches = [r for r in resources
               if all(r.get("url") == u and (v is None or r.get("version") == v)
                      for u, v in wanted)
               and all(r.get("version") == v for v in versions)]
    base = _base_url()
    query = urlencode(list(request.args.items(multi=True)))
    return fhir_response({
        "resourceType": "Bundle", "type": "searchset", "total": len(matches),
        "link": [{"relation": "self",
                  "url": f"{base}/{resource_type}" + (f"?{query}" if query else "")}],
        "entry": [{"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": dict(r),
                   "search": {"mode": "match"}} for r in matches]})


def _json_body() -> Any:
    """The request body as JSON, or an InputError saying exactly why not."""
    if request.mimetype not in JSON_TYPES:
        raise InputError(f"Send JSON ({' or '.join(JSON_TYPES)}), not "
                         f"{request.mimetype or 'a body without Content-Type'}.", status=415,
                         code="not-supported")
    raw = request.get_data(cache=True)  # raises 413 first when the body is too large
    if not raw.strip():
        raise InputError("The request body is empty; send a Parameters resource, a "
                         "QuestionnaireResponse or plain answers.", code="required")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # deeper than Python's parser goes
        raise InputError(f"The request body {pipeline.TOO_DEEP}.", code="structure") from None
    if data is None:
        if raw.strip() == b"null":
            raise InputError("The request body is JSON null; send a JSON object.")
        raise InputError("The request body is not valid JSON.", code="structure")
    if pipeline.nests_deeper(data):  # before any recursive reader (Parameters, resources)
        raise InputError(f"The request body {pipeline.TOO_DEEP}.", code="structure")
    return data


def _extract_inputs(parameters: Mapping[str, Any]) -> tuple[Any, Any]:
    """Pick the $extract inputs out of a Parameters resource: (response, patient).

    ``questionnaire`` is only checked: the response's own canonical chooses the
    Questionnaire, and it must be one this server loaded.
    """
    parts = _parts(parameters)
    response = _resource(parts, "questionnaire-response")
    if response is None:
        raise InputError("Parameters must contain 'questionnaire-response' with a "
                         "QuestionnaireResponse.", expression="Parameters.parameter",
                         code="required")
    questionnaire = _resource(parts, "questionnaire")
    if questionnaire is not None:
        _check_questionnaire(questionnaire, response)
    return response, _resource(parts, "patient")


def _parts(parameters: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The parameters by name; unknown or repeated names are refused."""
    parts = parameters.get("parameter", [])
    if not isinstance(parts, list):
        raise InputError("Parameters.parameter must be a list.",
                         expression="Parameters.parameter")
    by_name: dict[str, Mapping[str, Any]] = {}
    for n, part in enumerate(parts):
        name = part.get("name") if isinstance(part, Mapping) else None
        where = f"Parameters.parameter[{n}]"
        if not isinstance(name, str):
            raise InputError("Each parameter needs a name.", expression=f"{where}.name")
        if name not in EXTRACT_PARAMETERS:
            raise InputError(f"Unknown parameter {name!r}; this operation takes "
                             f"{', '.join(EXTRACT_PARAMETERS)}.", expression=f"{where}.name",
                             code="not-supported")
        if name in by_name:
            raise InputError(f"Parameter {name!r} may appear only once.",
                             expression=f"{where}.name")
        by_name[name] = part
    return by_name


def _resource(parts: Mapping[str, Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    """The JSON object carried in ``resource`` of the named part, if the part is given."""
    part = parts.get(name)
    if part is None:
        return None
    resource = part.get("resource")
    if not isinstance(resource, Mapping):
        raise InputError(f"Parameter {name!r} must carry its content as a resource "
                         "(a JSON object in 'resource').",
                         expression=f"Parameters.parameter.where(name='{name}').resource")
    return resource


def _check_questionnaire(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> None:
    """Refuse a Questionnaire this server did not load, or one the response does not answer."""
    where = "Parameters.parameter.where(name='questionnaire').resource"
    if questionnaire.get("resourceType") != "Questionnaire":
        raise InputError(f"Parameter 'questionnaire' must be a Questionnaire, got "
                         f"{questionnaire.get('resourceType')!r}.", expression=where)
    url, version = questionnaire.get("url"), questionnaire.get("version")
    canonical = f"{url}|{version}" if isinstance(version, str) and version else url
    form = _kb().form_for(canonical) if isinstance(canonical, str) and canonical else None
    if form is None:
        loaded = ", ".join(sorted(f.canonical for f in _kb().forms.values()))
        raise InputError(f"Only Questionnaires loaded on this server can be extracted; "
                         f"{canonical or 'a Questionnaire without url'} is not one of them "
                         f"(loaded: {loaded}).", status=422, expression=where,
                         code="not-supported")
    answered = response.get("questionnaire")
    if isinstance(answered, str) and answered and answered.partition("|")[0] != form.url:
        raise InputError(f"Parameter 'questionnaire' ({form.url}) is not the Questionnaire the "
                         f"response answers ({answered}).", status=422, expression=where,
                         code="business-rule")
