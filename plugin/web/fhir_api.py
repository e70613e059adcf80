"""The FHIR API: definitions (Questionnaire, CodeSystem), metadata and SDC $extract."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, request

from .. import __version__
from ..core import bundle, capability, pipeline
from ..errors import InputError, NotFoundError
from ..knowledge import EXTENSION_KEY, KnowledgeBase
from .errors import fhir_response

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
JSON_TYPES = ("application/json", "application/fhir+json")


def _kb() -> KnowledgeBase:
    return current_app.extensions[EXTENSION_KEY]


def _base_url() -> str:
    return (current_app.config.get("FHIR_BASE_URL") or request.url_root.rstrip("/") + "/fhir")


@bp.get("/metadata")
def metadata() -> Response:
    return fhir_response(capability.build(version=__version__, base_url=_base_url(),
                                          date=dt.date.today().isoformat()))


@bp.get("/Questionnaire")
def search_questionnaires() -> Response:
    return _search("Questionnaire", [f.resource for f in _kb().forms.values()])


@bp.get("/Questionnaire/<id_>")
def read_questionnaire(id_: str) -> Response:
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
    """SDC $extract at type level; also takes a bare QR or the plain answers format."""
    data = _json_body()
    patient = None
    if isinstance(data, Mapping) and data.get("resourceType") == "Parameters":
        data, patient = _parameters(data)
    now = dt.datetime.now(dt.timezone.utc)
    exam = pipeline.exam_from_input(_kb(), data, patient=patient, now=now)
    pipeline.require_extractable(exam)
    result = bundle.extraction(exam, _kb().mappings_for(exam.form), plugin_version=__version__,
                               recorded=now.isoformat(timespec="seconds"))
    return fhir_response({"resourceType": "Parameters",
                          "parameter": [{"name": "return", "resource": result}]})


def _search(resource_type: str, resources: list[Mapping[str, Any]]) -> Response:
    """A searchset over the loaded resources, filtered by canonical ``url``/``version``."""
    url, version = request.args.get("url"), request.args.get("version")
    if url and "|" in url:
        url, version = url.split("|", 1)
    unknown = set(request.args) - {"url", "version"}
    if unknown:
        raise InputError(f"Unsupported search parameter(s): {', '.join(sorted(unknown))}; "
                         "this server supports url and version.", expression="search")
    matches = [r for r in resources if (not url or r.get("url") == url)
               and (not version or r.get("version") == version)]
    base = _base_url()
    return fhir_response({
        "resourceType": "Bundle", "type": "searchset", "total": len(matches),
        "link": [{"relation": "self", "url": request.url}],
        "entry": [{"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": dict(r),
                   "search": {"mode": "match"}} for r in matches]})


def _json_body() -> Any:
    if request.mimetype not in JSON_TYPES:
        raise InputError(f"Send JSON ({' or '.join(JSON_TYPES)}), not "
                         f"{request.mimetype or 'no content type'}.", status=415,
                         code="not-supported")
    data = request.get_json(silent=True)
    if data is None:
        raise InputError("The request body is not valid JSON.", code="structure")
    return data


def _parameters(parameters: Mapping[str, Any]) -> tuple[Any, Any]:
    """Pick the SDC inputs out of a Parameters resource."""
    by_name: dict[str, Any] = {}
    for part in parameters.get("parameter") or []:
        if isinstance(part, Mapping) and "name" in part:
            by_name[part["name"]] = part.get("resource")
    response = by_name.get("questionnaire-response")
    if response is None:
        raise InputError("Parameters must contain 'questionnaire-response' with a "
                         "QuestionnaireResponse.", expression="Parameters.parameter",
                         code="required")
    questionnaire = by_name.get("questionnaire")
    if isinstance(questionnaire, Mapping) and _kb().form_for(
            f"{questionnaire.get('url')}|{questionnaire.get('version')}") is None:
        raise InputError("Only Questionnaires loaded on this server can be extracted; "
                         f"{questionnaire.get('url')} is not.", status=422,
                         expression="Parameters.parameter.where(name='questionnaire')",
                         code="not-supported")
    return response, by_name.get("patient")
