"""The FHIR API: definitions (Questionnaire, CodeSystem), metadata, SDC $extract, and
the stored exams (QuestionnaireResponse read, vread, history, search; Patient read).

A thin edge: it parses the request, hands plain data to the core (``pipeline``,
``bundle``, ``capability``) or the store, and renders the result. Every refusal is raised
as a PluginError and rendered once, as an OperationOutcome, by ``web.errors``.

Versions of a stored exam (``meta.versionId``, ETag ``W/"<versionId>"``): a signed exam's
current version is its latest revision and its versionId the revision number ("1", "2",
...); every revision stays readable for good (vread). An exam never signed shows its
in-progress draft as ``draft-<n>``, n the store's write counter, so the ETag changes with
every autosave; drafts are not kept, so vread of a draft version answers only while it is
current. An amendment in progress is not shown: the latest signed revision stays current.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotAcceptable
from werkzeug.http import http_date
from werkzeug.routing import BaseConverter

from .. import __version__
from ..adapters import store as store_mod
from ..core import bundle, capability, outcome, pipeline
from ..errors import InputError, NotFoundError
from ..knowledge import EXTENSION_KEY, KnowledgeBase
from .errors import fhir_response

bp = Blueprint("fhir", __name__, url_prefix="/fhir")


class _InstanceId(BaseConverter):
    """A resource id in a path: never ``$...``, so ``GET .../$extract`` stays a 405, not a
    read of a resource called "$extract"."""

    regex = r"[^$/][^/]*"


# registered before the routes below (deferred in order), on the app's URL map
bp.record_once(lambda state: state.app.url_map.converters.setdefault("fhir_id", _InstanceId))
#: Request bodies we read; anything else is refused with 415.
JSON_TYPES = ("application/json", "application/fhir+json")
#: ``_format`` values that ask for what we serve (FHIR JSON); others get 406.
JSON_FORMATS = ("json", "application/json", "application/fhir+json")
#: SDC $extract inputs (``patient`` is this server's extension: the record's subject).
EXTRACT_PARAMETERS = ("questionnaire-response", "questionnaire", "patient")
SEARCH_PARAMETERS = ("url", "version", "_format")
#: QuestionnaireResponse search (``_offset`` is ours: the next/previous page links use it).
RECORD_PARAMETERS = ("patient", "subject", "status", "authored", "_count", "_offset",
                     "_format")
DEFAULT_COUNT, MAX_COUNT = 50, 200
QR_STATUS_SYSTEM = "http://hl7.org/fhir/questionnaire-answers-status"
#: Every R4 QuestionnaireResponse status: the last two are valid but never stored here.
QR_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
QR = "QuestionnaireResponse"
_DATE = re.compile(r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
                   r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
                   r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
                   r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?")
_DRAFT_VERSION = re.compile(r"draft-([1-9][0-9]{0,9})")
_REVISION_VERSION = re.compile(r"[1-9][0-9]{0,8}")


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


# --- stored records: Patient read; QuestionnaireResponse read, vread, history, search -----

@bp.get("/Patient/<id_>")
def read_patient(id_: str) -> Response:
    """A stored Patient (the subject the exams' responses reference). Patients are never
    changed once stored, so each has the one version "1"."""
    try:
        record = _store().patient(id_)
    except NotFoundError:
        raise NotFoundError(f"Patient/{id_} is not known to this server.") from None
    resource = _with_meta(record.resource, record.id, "1", record.created)
    return _versioned(resource)


@bp.get(f"/{QR}/<fhir_id:id_>")
def read_response(id_: str) -> Response:
    """The exam's current QuestionnaireResponse (see the module notes on versions)."""
    return _versioned(_current_resource(_current(id_)))


@bp.get(f"/{QR}/<fhir_id:id_>/_history/<vid>")
def vread_response(id_: str, vid: str) -> Response:
    current = _current(id_)
    if _REVISION_VERSION.fullmatch(vid):
        try:
            revision = _store().revision(current.exam.id, int(vid))
        except NotFoundError:
            raise NotFoundError(f"{QR}/{id_} has no version {vid}.") from None
        return _versioned(_revision_resource(revision))
    if current.revision is None and vid == _version_id(current):
        return _versioned(_current_resource(current))
    if _DRAFT_VERSION.fullmatch(vid):
        raise NotFoundError(f"{QR}/{id_} version {vid} was a draft; drafts are not kept, "
                            "only the current one and the signed revisions can be read.")
    raise NotFoundError(f"{QR}/{id_} has no version {vid}.")


@bp.get(f"/{QR}/<fhir_id:id_>/_history")
def history_response(id_: str) -> Response:
    """A history Bundle, newest first: the signed revisions, or the draft of an exam never
    signed. The first version listed is shown as the create (POST), later ones as updates."""
    _search_args((), QR)  # _since, _at and _count are not supported
    current = _current(id_)
    if current.revision is None:
        versions = [_current_resource(current)]
    else:
        versions = [_revision_resource(r) for r in reversed(_store().revisions(id_))]
    base, key = _base_url(), current.exam.id
    entries = []
    for n, resource in enumerate(versions):
        first = n == len(versions) - 1
        entries.append({
            "fullUrl": f"{base}/{QR}/{key}", "resource": resource,
            "request": {"method": "POST", "url": QR} if first
            else {"method": "PUT", "url": f"{QR}/{key}"},
            "response": {"status": "201 Created" if first else "200 OK",
                         "etag": f'W/"{resource["meta"]["versionId"]}"',
                         "lastModified": resource["meta"]["lastUpdated"]}})
    return fhir_response(_bundle("history", len(entries),
                                 [{"relation": "self", "url": f"{base}/{QR}/{key}/_history"}],
                                 entries))


@bp.get(f"/{QR}")
def search_responses() -> Response:
    """Search the exams' current responses by patient/subject, status and authored (the
    signature time, or a draft's last save; a date without a zone is read as UTC).
    Repeated parameters AND, comma-separated values OR; newest first, paged by _count."""
    args, ignored = _search_args(RECORD_PARAMETERS, QR)
    patient_ids: set[str] | None = None
    statuses: set[str] | None = None
    authored: list[list[store_mod.TimeRange]] = []
    for name, value in args:
        if name in ("patient", "subject"):
            found = {i for i in map(_patient_id, value.split(",")) if i}
            patient_ids = found if patient_ids is None else patient_ids & found
        elif name == "status":
            codes = {c for c in map(_status, value.split(",")) if c}
            statuses = codes if statuses is None else statuses & codes
        elif name == "authored":
            authored.append([r for v in value.split(",") for r in _date_ranges(v)])
    count = min(_whole(args, "_count", DEFAULT_COUNT), MAX_COUNT)
    offset = _whole(args, "_offset", 0)
    total, page = _store().search_current(
        patient_ids=patient_ids, statuses=statuses, changed=authored, limit=count,
        offset=offset)
    base = _base_url()
    kept = [(k, v) for k, v in args if k not in ("_count", "_offset")]

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{base}/{QR}?{query}"}

    links = [link("self", offset)]
    if offset + count < total and count > 0:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{QR}/{c.exam.id}", "resource": _current_resource(c),
         "search": {"mode": "match"}} for c in page]
    if ignored:
        entries.append({"resource": outcome.information(
            f"Ignored unsupported search parameter(s): {', '.join(ignored)} "
            "(Prefer: handling=lenient).", severity="warning"),
            "search": {"mode": "outcome"}})
    return fhir_response(_bundle("searchset", total, links, entries))


def _store() -> store_mod.Store:
    return store_mod.from_app(current_app)


def _current(id_: str) -> store_mod.Current:
    try:
        return _store().current(id_)
    except NotFoundError:
        raise NotFoundError(f"{QR}/{id_} is not known to this server.") from None


def _version_id(current: store_mod.Current) -> str:
    if current.revision is not None:
        return str(current.revision.number)
    return f"draft-{current.exam.version}"


def _current_resource(current: store_mod.Current) -> dict[str, Any]:
    if current.revision is not None:
        return _revision_resource(current.revision)
    exam = current.exam
    resource = _with_meta(exam.draft or {}, exam.id, _version_id(current), current.changed,
                          resource_type=QR)
    resource["status"] = "in-progress"  # what a never-signed exam is, whatever was saved
    resource.setdefault("questionnaire", exam.questionnaire)
    return resource


def _revision_resource(revision: store_mod.Revision) -> dict[str, Any]:
    return _with_meta(revision.response, revision.exam_id, str(revision.number),
                      revision.signed_at, resource_type=QR)


def _with_meta(stored: Mapping[str, Any], id_: str, version_id: str, updated: dt.datetime,
               resource_type: str | None = None) -> dict[str, Any]:
    """The stored JSON as served: our id, meta.versionId and meta.lastUpdated first."""
    meta = stored.get("meta")
    meta = {**(meta if isinstance(meta, Mapping) else {}), "versionId": version_id,
            "lastUpdated": _instant(updated)}
    rest = {k: v for k, v in stored.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource_type or stored["resourceType"], "id": id_,
            "meta": meta, **rest}


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _versioned(resource: dict[str, Any]) -> Response:
    """A read answer with the version headers (ETag, Last-Modified)."""
    meta = resource["meta"]
    updated = dt.datetime.fromisoformat(meta["lastUpdated"].replace("Z", "+00:00"))
    return fhir_response(resource, headers={"ETag": f'W/"{meta["versionId"]}"',
                                            "Last-Modified": http_date(updated)})


def _lenient() -> bool:
    """``Prefer: handling=lenient`` (FHIR search): ignore unknown parameters."""
    prefer = request.headers.get("Prefer", "")
    return any(p.strip().lower().replace(" ", "") == "handling=lenient"
               for p in re.split(r"[,;]", prefer))


def _search_args(allowed: Sequence[str],
                 resource_type: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(the supported parameters with a value, the unsupported ones ignored). Unsupported
    parameters are refused (400) unless the client asked for lenient handling: a client
    that believes it filtered must not silently receive everything."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown and not _lenient():
        supported = ", ".join(a for a in allowed if a != "_format") or "no parameters"
        raise InputError(f"Unsupported search parameter(s): {', '.join(unknown)}; "
                         f"{resource_type} supports {supported}.", code="not-supported")
    args = [(k, v) for k, v in request.args.items(multi=True)
            if k in allowed and k != "_format" and v != ""]  # an empty value is no filter
    return args, unknown


def _whole(args: Sequence[tuple[str, str]], name: str, default: int) -> int:
    values = [v for k, v in args if k == name]
    if len(values) > 1:
        raise InputError(f"{name} may be given only once.", expression=name)
    if not values:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", values[0]):
        raise InputError(f"{name} must be a whole number, not {values[0]!r}.",
                         expression=name)
    return int(values[0])


def _patient_id(value: str) -> str | None:
    """The Patient id a reference parameter names (``id``, ``Patient/id`` or the absolute
    URL on this server); None when it names anything else (it then matches nothing)."""
    value = value.strip().removeprefix(_base_url() + "/")
    parts = value.split("/")
    if len(parts) == 1:
        return value or None
    if parts[0] == "Patient" and (len(parts) == 2
                                  or (len(parts) == 4 and parts[2] == "_history")):
        return parts[1] or None
    return None


def _status(value: str) -> str | None:
    """A status token (``code`` or ``system|code``); None when it can never match."""
    system, bar, code = value.strip().rpartition("|")
    if code not in QR_STATUSES:
        raise InputError(f"status={value!r} is not a QuestionnaireResponse status "
                         f"({', '.join(QR_STATUSES)}).", expression="status")
    if bar and system not in ("", QR_STATUS_SYSTEM):
        return None
    return code if code in store_mod.CURRENT_STATUSES else None


def _date_ranges(value: str) -> list[store_mod.TimeRange]:
    """The half-open UTC ranges a FHIR date search value matches (a stored time is a
    point: gt/sa mean after the value's whole precision, lt/eb before its start)."""
    match = _DATE.fullmatch(value.strip())
    if match is None:
        raise InputError(f"authored={value!r} is not a FHIR date search value "
                         "(e.g. ge2026-01-01 or lt2026-11-21T10:30:00Z).",
                         expression="authored")
    g = match.groupdict()
    prefix = g["prefix"] or "eq"
    if prefix == "ap":
        raise InputError("authored: the 'ap' prefix is not supported.",
                         expression="authored", code="not-supported")
    try:
        low, high = (b.astimezone(dt.timezone.utc) for b in _bounds(g))
    except (ValueError, OverflowError):
        raise InputError(f"authored={value!r} is not a valid date.",
                         expression="authored") from None
    return {"eq": [(low, high)], "ne": [(None, low), (high, None)], "lt": [(None, low)],
            "eb": [(None, low)], "le": [(None, high)], "gt": [(high, None)],
            "sa": [(high, None)], "ge": [(low, None)]}[prefix]


def _bounds(g: Mapping[str, str | None]) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a date value at its own precision."""
    tz = dt.timezone.utc
    if g["tz"] and g["tz"] != "Z":
        sign = -1 if g["tz"][0] == "-" else 1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    year = int(g["y"] or 0)
    if g["m"] is None:
        return (dt.datetime(year, 1, 1, tzinfo=tz), dt.datetime(year + 1, 1, 1, tzinfo=tz))
    month = int(g["m"])
    if g["d"] is None:
        start = dt.datetime(year, month, 1, tzinfo=tz)
        end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return start, end
    day = dt.datetime(year, month, int(g["d"]), tzinfo=tz)
    if g["H"] is None:
        return day, day + dt.timedelta(days=1)
    start = day.replace(hour=int(g["H"]), minute=int(g["M"] or 0), second=int(g["S"] or 0))
    if g["S"] is None:
        return start, start + dt.timedelta(minutes=1)
    if g["f"] is None:
        return start, start + dt.timedelta(seconds=1)
    digits = min(len(g["f"]), 6)
    start = start.replace(microsecond=int(g["f"][:digits].ljust(6, "0")))
    return start, start + dt.timedelta(microseconds=10 ** (6 - digits))


def _exam_input() -> tuple[Any, Any]:
    """The exam and the optional Patient of an $extract/$assess body: a Parameters
    resource, a bare QuestionnaireResponse, or plain answers."""
    data = _json_body()
    if isinstance(data, Mapping) and data.get("resourceType") == "Parameters":
        return _extract_inputs(data)
    return data, None


def _search(resource_type: str, resources: Sequence[Mapping[str, Any]]) -> Response:
    """A searchset over the loaded resources, filtered by canonical ``url``/``version``.

    Unknown parameters are refused (400) unless ``Prefer: handling=lenient``.
    """
    _search_args(SEARCH_PARAMETERS, resource_type)
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
    return fhir_response(_bundle(
        "searchset", len(matches),
        [{"relation": "self", "url": f"{base}/{resource_type}" + (f"?{query}" if query else "")}],
        [{"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": dict(r),
          "search": {"mode": "match"}} for r in matches]))


def _bundle(type_: str, total: int, links: list[dict[str, str]],
            entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A Bundle; no ``entry`` at all when there is none (FHIR JSON forbids empty arrays)."""
    result: dict[str, Any] = {"resourceType": "Bundle", "type": type_, "total": total,
                              "link": links}
    if entries:
        result["entry"] = entries
    return result


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
