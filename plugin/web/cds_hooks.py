"""CDS Hooks 2.0 services: discovery, the service calls and feedback (a thin edge).

- ``GET  /cds-services`` lists the services (no authentication: it holds no patient data).
- ``POST /cds-services/posterior-thigh-patient-view`` (hook ``patient-view``): a SMART
  link that opens the exam, plus red-flag and differential cards when the prefetched
  Observations hold a recorded exam.
- ``POST /cds-services/posterior-thigh-mri-order`` (hooks ``order-select`` and
  ``order-sign``; the spec lets one service id serve several hooks): warns when a lumbar
  MRI is ordered early for radicular pain without red flags.
- ``POST /cds-services/<id>/feedback``: accepted and acknowledged; nothing about the
  patient is logged. An ``overrideReason`` must be one the cards offer: a code of the
  ``cds-override-reason`` CodeSystem (``questionnaires/codesystems/``, published at
  ``/fhir/CodeSystem``); any other is a 400.

Service and feedback calls must carry the CDS client's JWT (``cds_auth``); its ``aud``
is the exact URL called: ``CDS_HOOKS_AUDIENCE`` (the discovery URL) plus the service
path, or the request's own URL when that is not configured. The services are called
from EHR servers and from browser-based CDS clients, which need CORS: responses allow
any origin, as they are authorised by the bearer token, never by cookies.

Patient data comes from ``prefetch``. A key the client did not send (absent, not null:
null means it looked and found nothing) is fetched from the request's ``fhirServer``
with its ``fhirAuthorization`` token when the service needs it (patient-view always;
the order hooks only when a lumbar MRI is ordered): only from an https server, or one
of the ``fhir_servers`` configured for that CDS client. When it cannot be had the
answer is 412 Precondition Failed, as the spec says. Neither the token nor the data is
logged.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.exceptions import HTTPException, NotFound, ServiceUnavailable

from ..adapters import http_json, replay, store
from ..adapters.engine import StoreError
from ..core import fhir_models, outcome
from ..decision import assessment as engine
from ..decision import cards
from ..errors import AnswerError, InputError, KnowledgeError, PluginError
from ..knowledge import DECISION_FORM, EXTENSION_KEY, KnowledgeBase
from . import boundary, cds_auth, cds_fetch, smart
from .errors import log_unexpected, status_of

log = logging.getLogger(__name__)
PREFIX = "/cds-services"
bp = Blueprint("cds_hooks", __name__, url_prefix=PREFIX)
STATE_KEY = "plugin.cds_hooks"

PATIENT_VIEW = "posterior-thigh-patient-view"
MRI_ORDER = "posterior-thigh-mri-order"
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    # Our extracted Observations are category exam (tests) or survey (history); newest
    # first, so the latest exam is complete within the page.
    "observations": "Observation?patient={{context.patientId}}&category=exam,survey"
                    "&_sort=-date&_count=200",
}
USAGE = ("Needs the prefetched Patient and Observations (category exam and survey) coded "
         "with the posterior-thigh-exam exam-tests CodeSystem; the SMART app link needs the "
         "exam app registered with the EHR. Cards are suggestions for the clinician.")


@dataclass(frozen=True)
class Service:
    id: str
    hooks: tuple[str, ...]
    title: str
    description: str


SERVICES = {s.id: s for s in (
    Service(PATIENT_VIEW, ("patient-view",), "Posterior thigh pain exam",
            "Offers the structured posterior thigh exam; when a recorded exam is prefetched, "
            "shows its red flags, leading condition and suggested referrals."),
    Service(MRI_ORDER, ("order-select", "order-sign"), "Lumbar MRI appropriateness",
            "Warns when a lumbar spine MRI is ordered for radicular pain that has lasted "
            "less than the imaging threshold, without red flags, per the last exam."),
)}


@dataclass
class State:
    clients: dict[str, cds_auth.Client]
    #: The MRI card's overrideReasons, from the cds-override-reason CodeSystem.
    override_reasons: tuple[dict[str, str], ...]


@bp.record_once
def _setup(setup_state: Any) -> None:
    """Check the client allow-list when the blueprint is registered (start-up)."""
    app = setup_state.app
    timeout = float(app.config["CDS_HOOKS_FETCH_TIMEOUT_SECONDS"])

    def fetch_jwks(url: str) -> Any:
        return http_json.fetch_json(url, timeout=timeout, max_bytes=cds_fetch.MAX_JWKS_BYTES,
                                    accept="application/jwk-set+json, application/json")

    clients = cds_auth.load_clients(
        app.config.get("CDS_HOOKS_CLIENTS", {}), fetch=fetch_jwks,
        cache_seconds=float(app.config["CDS_HOOKS_JWKS_CACHE_SECONDS"]))
    app.extensions[STATE_KEY] = State(clients, _override_reasons(app))


def _override_reasons(app: Any) -> tuple[dict[str, str], ...]:
    """The overrideReasons the MRI card offers; their CodeSystem must be loaded."""
    kb: KnowledgeBase = app.extensions[EXTENSION_KEY]
    code_system = kb.code_systems.get(cards.OVERRIDE_REASONS)
    where = str(Path(app.config["QUESTIONNAIRES_DIR"]) / "codesystems"
                / f"{cards.OVERRIDE_REASONS}.json")
    if code_system is None:
        raise KnowledgeError(where, "", "missing: the CDS cards' overrideReasons come from it")
    if not code_system.get("concept") or any(
            not c.get("display") for c in code_system["concept"]):
        raise KnowledgeError(where, "concept", "every override reason needs a code and a "
                                               "display")
    return cards.override_reasons(code_system)


# --- request schemas -----------------------------------------------------------------

_FHIR_ID = validate.Regexp(r"^[A-Za-z0-9\-.]{1,64}$", error="must be a FHIR id")


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # the spec lets clients add fields (and extensions)


class _Authorization(_Lenient):
    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True, strict=True)
    scope = fields.String(required=True)
    subject = fields.String(required=True)
    patient = fields.String()


class _HookRequest(_Lenient):
    hook = fields.String(required=True, validate=validate.Length(min=1))
    hookInstance = fields.String(required=True, validate=validate.Length(min=1, max=128))
    fhirServer = fields.Url(require_tld=False)
    fhirAuthorization = fields.Nested(_Authorization)
    context = fields.Dict(keys=fields.String(), required=True)
    prefetch = fields.Dict(keys=fields.String(), allow_none=True)

    @validates_schema
    def _server_with_token(self, data: dict[str, Any], **_: Any) -> None:
        if "fhirAuthorization" in data and "fhirServer" not in data:
            raise ValidationError("required when fhirAuthorization is given", "fhirServer")


class _PatientContext(_Lenient):
    userId = fields.String(required=True, validate=validate.Length(min=1))
    patientId = fields.String(required=True, validate=_FHIR_ID)
    encounterId = fields.String(validate=_FHIR_ID)


class _Bundle(_Lenient):
    resourceType = fields.String(required=True, validate=validate.Equal("Bundle"))
    entry = fields.List(fields.Dict(), load_default=list)


class _OrderSignContext(_PatientContext):
    draftOrders = fields.Nested(_Bundle, required=True)


class _OrderSelectContext(_OrderSignContext):
    selections = fields.List(fields.String(), required=True)


CONTEXTS = {"patient-view": _PatientContext, "order-select": _OrderSelectContext,
            "order-sign": _OrderSignContext}


class _Coding(_Lenient):
    system = fields.String()
    code = fields.String(required=True)
    display = fields.String()


class _OverrideReason(_Lenient):
    reason = fields.Nested(_Coding)
    userComment = fields.String()


class _Feedback(_Lenient):
    card = fields.String(required=True, validate=validate.Length(min=1))
    outcome = fields.String(required=True, validate=validate.OneOf(("accepted", "overridden")))
    acceptedSuggestions = fields.List(fields.Nested(
        Schema.from_dict({"id": fields.String(required=True)})))
    overrideReason = fields.Nested(_OverrideReason)
    outcomeTimestamp = fields.AwareDateTime(required=True)

    @validates_schema
    def _accepted_needs_suggestions(self, data: dict[str, Any], **_: Any) -> None:
        if data["outcome"] == "accepted" and not data.get("acceptedSuggestions"):
            raise ValidationError("required when the outcome is accepted", "acceptedSuggestions")


class _FeedbackRequest(_Lenient):
    feedback = fields.List(fields.Nested(_Feedback), required=True,
                           validate=validate.Length(min=1, max=100))


# --- errors and CORS -----------------------------------------------------------------

class _BadRequest(Exception):
    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


#: OperationOutcome issue codes (R4 IssueType) for the statuses this API answers.
_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                405: "not-supported", 412: "incomplete", 413: "too-long", 414: "too-long",
                415: "not-supported", 431: "too-long", 503: "transient"}


def _error(status: int, message: str, issues: list[tuple[str | None, str]] = (),
           code: str | None = None) -> Response:
    """An OperationOutcome, as the FHIR API answers: the message first, then one issue per
    problem with where it was found (a FHIRPath-like path into the request). JSON media
    type, since CDS Hooks clients speak JSON rather than FHIR+JSON."""
    code = code or _ISSUE_CODES.get(status, "invalid" if status < 500 else "exception")
    severity = "fatal" if status >= 500 else "error"
    body = outcome.outcome([outcome.issue(severity, code, message)] + [
        outcome.issue(severity, code, text, expression) for expression, text in issues])
    response = jsonify(body)
    response.status_code = status
    return response


def _marshmallow_issues(messages: Any, path: str = "$") -> list[tuple[str | None, str]]:
    """marshmallow's nested error messages as (path, message) pairs."""
    if isinstance(messages, dict):
        return [pair for key, value in messages.items()
                for pair in _marshmallow_issues(
                    value, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")]
    if isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            return [(path, m) for m in messages]
        return [pair for m in messages for pair in _marshmallow_issues(m, path)]
    return [(path, str(messages))]


class _PreconditionFailed(Exception):
    """Data the service needs was neither prefetched nor fetchable (CDS Hooks: 412)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@bp.errorhandler(_BadRequest)
def _bad_request(error: _BadRequest) -> Response:
    return _error(400, error.message, _marshmallow_issues(error.details)
                  if error.details is not None else [])


@bp.errorhandler(PluginError)
def _refused_input(error: PluginError) -> Response:
    """What ``web.boundary`` refuses (a body, query or header it cannot accept), or any
    other refusal of the exception family: the FHIR API's OperationOutcome for it, each
    problem with where it was found."""
    response = jsonify(outcome.from_error(error))
    response.status_code = status_of(error)
    return response


@bp.errorhandler(_PreconditionFailed)
def _precondition_failed(error: _PreconditionFailed) -> Response:
    return _error(412, error.message)


@bp.errorhandler(cds_auth.CdsAuthError)
def _unauthorized(error: cds_auth.CdsAuthError) -> Response:
    log.info("CDS Hooks call refused (%s %s): %s", request.method,
             request.url_rule.rule if request.url_rule else "(no route)", error.reason)
    response = _error(401, error.reason)
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    response = _error(error.code or 500, error.description or error.name)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    """The last resort: an OperationOutcome, never an HTML page."""
    log_unexpected(error)
    return _error(500, "Internal error; nothing was stored.")


@bp.after_request
def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


# --- views ---------------------------------------------------------------------------

@bp.get("")
def discovery() -> Response:
    services = []
    for service in SERVICES.values():
        for hook in service.hooks:
            services.append({"hook": hook, "id": service.id, "title": service.title,
                             "description": service.description, "prefetch": dict(PREFETCH),
                             "usageRequirements": USAGE})
    return jsonify(services=services)


@bp.post("/<service_id>")
def call(service_id: str) -> Response:
    service = _service(service_id)
    claims = _authenticate()
    data = _load(_HookRequest(), _body(), "request")
    if data["hook"] not in service.hooks:
        raise _BadRequest(f"Service {service.id} answers {', '.join(service.hooks)}, "
                          f"not {data['hook']!r}.", {"hook": ["not served here"]})
    context = _load(CONTEXTS[data["hook"]](), data["context"], "context")
    if "draftOrders" in context:  # read by the decision engine: strictly FHIR first
        _check_resource(data["context"]["draftOrders"], "context.draftOrders")
    kb: KnowledgeBase = current_app.extensions[EXTENSION_KEY]
    needed = service.id == PATIENT_VIEW or bool(
        cards.lumbar_mri_orders(kb.decision, context["draftOrders"]))
    prefetch = _prefetch(data, context, claims["iss"], needed=needed)
    patient, observations = prefetch["patient"], prefetch["observations"]
    exam = _recorded_exam(kb, observations, context["patientId"], patient)
    now = dt.datetime.now(dt.timezone.utc)
    if service.id == PATIENT_VIEW:
        result = [cards.launch_card(smart.launch_url(), kb.decision, has_exam=exam is not None)]
        if exam is not None:
            result += cards.assessment_cards(
                kb.decision, engine.assess(kb.decision, exam.facts),
                subject={"reference": f"Patient/{context['patientId']}", "type": "Patient"},
                encounter=({"reference": f"Encounter/{context['encounterId']}"}
                           if context.get("encounterId") else None),
                exam_id=exam.exam_id or f"cds-{data['hookInstance']}",
                authored=now.isoformat(timespec="seconds"), recorded=exam.recorded)
    else:
        result = cards.check_mri_order(kb.decision, exam, context["draftOrders"], now=now,
                                       reasons=_state().override_reasons)
    return jsonify(cards=result)


@bp.post("/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    _service(service_id)
    _authenticate()
    data = _load(_FeedbackRequest(), _body(), "request")
    offered = {(r["system"], r["code"]) for r in _state().override_reasons}
    unknown = {n: {"overrideReason": {"reason": ["not one of the overrideReasons offered "
                                                 f"(CodeSystem {cards.OVERRIDE_REASONS})"]}}
               for n, f in enumerate(data["feedback"])
               if "reason" in f.get("overrideReason", {})
               and (f["overrideReason"]["reason"].get("system"),
                    f["overrideReason"]["reason"]["code"]) not in offered}
    if unknown:
        raise _BadRequest("The feedback names an override reason this service does not "
                          "offer.", {"feedback": unknown})
    outcomes = [f["outcome"] for f in data["feedback"]]
    log.info("CDS Hooks feedback for %s: %d accepted, %d overridden", service_id,
             outcomes.count("accepted"), outcomes.count("overridden"))
    return jsonify({})


# --- helpers -------------------------------------------------------------------------

def _service(service_id: str) -> Service:
    service = SERVICES.get(service_id)
    if service is None:
        raise NotFound(f"No CDS service {service_id!r}; see GET {PREFIX}.")
    return service


def _audience() -> str:
    """The exact URL being called, as the client's JWT must name it."""
    configured = (current_app.config.get("CDS_HOOKS_AUDIENCE") or "").rstrip("/")
    base = configured or (request.url_root.rstrip("/") + PREFIX)
    return base + request.path[len(PREFIX):]


def _state() -> State:
    state: State = current_app.extensions[STATE_KEY]
    return state


def _authenticate() -> dict[str, Any]:
    state = _state()
    token = cds_auth.bearer_token(request.headers.get("Authorization"))
    return cds_auth.verify(token, clients=state.clients, audience=_audience(),
                           replay=_first_use)


def _first_use(iss: str, jti: str, exp: float) -> bool:
    """The replay check, shared by every process through the database."""
    expires = dt.datetime.fromtimestamp(exp, dt.timezone.utc)
    try:
        return replay.first_use(store.from_app(current_app), iss, jti, expires)
    except StoreError as error:
        # the error's type only: a database message may quote the values sent
        log.error("CDS Hooks: cannot check a token's jti (%s)",
                  type(error.original_error or error).__name__)
        raise ServiceUnavailable("The token could not be checked for replay; try again "
                                 "shortly.") from error


def _body() -> Any:
    data = boundary.json_body("The body", media_types=None)  # CDS clients vary the type
    if not isinstance(data, dict):
        raise _BadRequest("The body must be a JSON object.")
    return data


def _check_resource(resource: dict[str, Any], where: str) -> None:
    """Refuse a resource in the request that is not valid FHIR R4 (raw JSON types
    included), naming each problem's place, before anything reads it."""
    problems = fhir_models.validate(resource)
    if problems:
        raise InputError(f"{where} is not valid FHIR R4.", issues=[
            (f"{where}.{p.partition(': ')[0]}", p.partition(": ")[2]) for p in problems])


def _load(schema: Schema, data: Any, where: str) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise _BadRequest(f"The {where} does not follow CDS Hooks 2.0.", exc.messages) from exc


def _prefetch(data: dict[str, Any], context: dict[str, Any], iss: str, *,
              needed: bool) -> dict[str, Any]:
    """Each PREFETCH key's data, read (``READERS``): as the client sent it, else, when
    ``needed``, fetched from its ``fhirServer`` (CDS Hooks 2.0). A key sent as null
    means the client found nothing: it is not fetched. Malformed data the client sent
    is a 400; data that is needed and cannot be had is a 412."""
    sent = data.get("prefetch") or {}
    result = {key: READERS[key](sent[key], context) if key in sent else None
              for key in PREFETCH}
    missing = [key for key in PREFETCH if key not in sent]
    if not needed or not missing:
        return result
    state = _state()
    server, authorization = data.get("fhirServer"), data.get("fhirAuthorization")
    if not server or not authorization:
        raise _PreconditionFailed(
            f"prefetch {', '.join(missing)} not sent, and the request has no fhirServer "
            "and fhirAuthorization to fetch it with.")
    if not cds_fetch.server_allowed(server, state.clients[iss].fhir_servers):
        raise _PreconditionFailed(
            "prefetch not sent, and data is fetched only from https FHIR servers (or those "
            "configured for this CDS client); fhirServer is neither.")
    timeout = float(current_app.config["CDS_HOOKS_FETCH_TIMEOUT_SECONDS"])
    for key in missing:
        try:
            fetched = cds_fetch.fetch_prefetch(server, PREFETCH[key], context, timeout=timeout,
                                               access_token=authorization["access_token"])
            result[key] = READERS[key](fetched, context)
        except (cds_fetch.FetchError, _BadRequest) as error:
            reason = error.reason if isinstance(error, cds_fetch.FetchError) \
                else "the answer is not what the template asks for"
            log.warning("CDS Hooks: fetching prefetch %r from the client's fhirServer "
                        "failed: %s", key, reason)
            raise _PreconditionFailed(f"prefetch {key} not sent, and fetching it from "
                                      f"fhirServer failed: {reason}.") from None
    log.info("CDS Hooks: fetched %d prefetch item(s) the client did not send", len(missing))
    return result


def _patient(value: Any, context: dict[str, Any]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("resourceType") != "Patient":
        raise _BadRequest("prefetch.patient must be a Patient resource or null.")
    if value.get("id") != context["patientId"]:
        raise _BadRequest("prefetch.patient is not the patient named by context.patientId.")
    return value


def _observations(value: Any, _context: dict[str, Any]) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle" \
            or not isinstance(value.get("entry", []), list):
        raise _BadRequest("prefetch.observations must be a Bundle (searchset) or null.")
    return [e.get("resource") for e in value.get("entry", []) if isinstance(e, dict)]


#: How each PREFETCH key's data is read (raising _BadRequest when it does not fit).
READERS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "patient": _patient, "observations": _observations}


def _recorded_exam(kb: KnowledgeBase, observations: list[Any] | None, patient_id: str,
                   patient: dict[str, Any] | None) -> cards.RecordedExam | None:
    if not observations:
        return None
    form = kb.forms[DECISION_FORM]
    try:
        return cards.exam_facts(form, kb.mappings_for(form), observations,
                                patient_id=patient_id, patient=patient)
    except InputError as error:
        # The EHR's data, not the caller's request: answer without the exam's cards.
        log.warning("prefetched exam Observations could not be read (%s); answering "
                    "without them", error.issues[0][0] or "observations")
    except AnswerError as error:  # findings that contradict each other or the ranges
        log.warning("prefetched exam Observations do not make a valid exam (%d "
                    "question(s)); answering without them", len(error.errors))
    except (AttributeError, TypeError, ValueError) as error:
        log.warning("prefetched exam Observations are malformed (%s); answering without "
                    "them", type(error).__name__)
    return None
