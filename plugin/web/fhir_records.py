"""The stored exams on the FHIR API: QuestionnaireResponse read, vread, history and search,
Patient read, and the signed exams' Observations (search and read).

A blueprint nested in ``fhir_api.bp`` (so under ``/fhir``, with its ``_format`` check);
the request conventions come from ``fhir_rest``. Nothing here writes.

Versions of a stored exam (``meta.versionId``, ETag ``W/"<versionId>"``): a signed exam's
current version is its latest revision and its versionId the revision number ("1", "2",
...); every revision stays readable for good (vread). An exam never signed shows its
in-progress draft as ``draft-<n>``, n the store's write counter, so the ETag changes with
every autosave; drafts are not kept, so vread of a draft version answers only while it is
current. An amendment in progress is not shown: the latest signed revision stays current.

Observations are not stored: they are derived from the current signed revision's
response by the code that builds the record Bundle sent to the EHR (``pipeline.exam_from
_input`` then ``bundle.extraction``), so they are exactly what the EHR receives, with the
Bundle's ``urn:uuid`` references made resolvable here (``QuestionnaireResponse/<exam>``,
``Patient/<id>``). Drafts have none; an amended exam shows only its amended revision's.
An Observation's id is ``<exam id>-<16 hex digits of the urn:uuid it has in the Bundle>``
(that urn:uuid is a uuid5 of its identifier ``<exam id>/<linkId>[/<code>]``): the exam id
finds the record without an index or a scan, and the rest names the finding, so the id
stays the same across amendments for as long as the finding is recorded (a position
number would point at another finding after an amendment).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response
from werkzeug.http import http_date

from .. import __version__
from ..adapters import store as store_mod
from ..core import bundle
from ..record import pipeline
from ..errors import InputError, NotFoundError
from .audit import read_of, refused_read, search_of
from .auth import requires_scope
from .errors import fhir_response
from .fhir_rest import (base_url, date_ranges, kb, paging, patient_ids, register_converter,
                        search_args, searchset, split_values, store, token)

bp = Blueprint("records", __name__)
bp.record_once(register_converter)

#: QuestionnaireResponse search (``_offset`` is ours: the next/previous page links use it).
RECORD_PARAMETERS = ("patient", "subject", "status", "authored", "_count", "_offset",
                     "_format")
#: Observation search: ``patient`` or ``subject`` is required (no unbounded scans).
OBSERVATION_PARAMETERS = ("patient", "subject", "code", "_count", "_offset", "_format")
QR_STATUS_SYSTEM = "http://hl7.org/fhir/questionnaire-answers-status"
#: Every R4 QuestionnaireResponse status: the last two are valid but never stored here.
QR_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
SIGNED = ("completed", "amended")
QR = "QuestionnaireResponse"
OBS = "Observation"
_DRAFT_VERSION = re.compile(r"draft-([1-9][0-9]{0,9})")
_REVISION_VERSION = re.compile(r"[1-9][0-9]{0,8}")
_OBSERVATION_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                             r"-([0-9a-f]{16})")


# --- Patient ----------------------------------------------------------------------------------

@bp.get("/Patient/<id_>")
@requires_scope("Patient", "r")
def read_patient(id_: str) -> Response:
    """A stored Patient (the subject the exams' responses reference). Patients are never
    changed once stored, so each has the one version "1"."""
    try:
        record = store().patient(id_)
    except NotFoundError:
        raise NotFoundError(f"Patient/{id_} is not known to this server.") from None
    read_of(f"Patient/{record.id}", record.id)
    return _versioned(_with_meta(record.resource, record.id, "1", record.created))


# --- QuestionnaireResponse: read, vread, history, search -------------------------------------

@bp.get(f"/{QR}/<fhir_id:id_>")
@requires_scope("QuestionnaireResponse", "r")
def read_response(id_: str) -> Response:
    """The exam's current QuestionnaireResponse (see the module notes on versions)."""
    current = _current(id_)
    read_of(f"{QR}/{current.exam.id}", current.exam.patient_id)
    return _versioned(_current_resource(current))


@bp.get(f"/{QR}/<fhir_id:id_>/_history/<vid>")
@requires_scope("QuestionnaireResponse", "r")
def vread_response(id_: str, vid: str) -> Response:
    current = _current(id_)
    try:
        return _vread(current, id_, vid)
    except NotFoundError as error:  # a version the patient's exam does not have
        refused_read(f"{QR}/{current.exam.id}/_history/{vid}", current.exam.patient_id,
                     error.message, interaction="vread")
        raise


def _vread(current: store_mod.Current, id_: str, vid: str) -> Response:
    if _REVISION_VERSION.fullmatch(vid):
        try:
            revision = store().revision(current.exam.id, int(vid))
        except NotFoundError:
            raise NotFoundError(f"{QR}/{id_} has no version {vid}.") from None
        _read_version(current, vid)
        return _versioned(_revision_resource(revision))
    if current.revision is None and vid == _version_id(current):
        _read_version(current, vid)
        return _versioned(_current_resource(current))
    if _DRAFT_VERSION.fullmatch(vid):
        raise NotFoundError(f"{QR}/{id_} version {vid} was a draft; drafts are not kept, "
                            "only the current one and the signed revisions can be read.")
    raise NotFoundError(f"{QR}/{id_} has no version {vid}.")


@bp.get(f"/{QR}/<fhir_id:id_>/_history")
@requires_scope("QuestionnaireResponse", "r")
def history_response(id_: str) -> Response:
    """A history Bundle, newest first: the signed revisions, or the draft of an exam never
    signed. The first version listed is shown as the create (POST), later ones as updates."""
    search_args((), QR)  # _since, _at and _count are not supported
    current = _current(id_)
    if current.revision is None:
        versions = [_current_resource(current)]
    else:
        versions = [_revision_resource(r) for r in reversed(store().revisions(id_))]
    read_of(f"{QR}/{current.exam.id}/_history", current.exam.patient_id,
            interaction="history-instance")
    base, key = base_url(), current.exam.id
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
    return fhir_response({"resourceType": "Bundle", "type": "history", "total": len(entries),
                          "link": [{"relation": "self", "url": f"{base}/{QR}/{key}/_history"}],
                          "entry": entries})


@bp.get(f"/{QR}")
@requires_scope("QuestionnaireResponse", "s")
def search_responses() -> Response:
    """Search the exams' current responses by patient/subject, status and authored (the
    signature time, or a draft's last save; a date without a zone is read as UTC).
    Repeated parameters AND, comma-separated values OR; newest first, paged by _count."""
    args, ignored = search_args(RECORD_PARAMETERS, QR)
    statuses: set[str] | None = None
    authored: list[list[store_mod.TimeRange]] = []
    for name, value in args:
        if name == "status":
            codes = {c for c in map(_status, split_values(value)) if c}
            statuses = codes if statuses is None else statuses & codes
        elif name == "authored":
            authored.append([r for v in split_values(value)
                             for r in date_ranges(v, "authored")])
    count, offset = paging(args)
    total, page = store().search_current(
        patient_ids=patient_ids(args), statuses=statuses, changed=authored, limit=count,
        offset=offset)
    search_of(QR, (c.exam.patient_id for c in page))
    base = base_url()
    entries = [{"fullUrl": f"{base}/{QR}/{c.exam.id}", "resource": _current_resource(c),
                "search": {"mode": "match"}} for c in page]
    return fhir_response(searchset(QR, args, total=total, count=count, offset=offset,
                                   entries=entries, ignored=ignored))


# --- Observation: search and read --------------------------------------------------------------

@bp.get(f"/{OBS}")
@requires_scope("Observation", "s")
def search_observations() -> Response:
    """The Observations of the patient's signed exams (each exam's current revision),
    newest exam first and in form order within an exam; ``code`` tokens match any of an
    Observation's codings. Repeated parameters AND, commas OR; paged by _count."""
    args, ignored = search_args(OBSERVATION_PARAMETERS, OBS)
    patients = patient_ids(args)
    if patients is None:
        raise InputError("Observation search needs patient (or subject): this server does "
                         "not search every patient's Observations at once.",
                         expression="patient", code="required")
    codes = [[token(v) for v in split_values(value)] for name, value in args if name == "code"]
    count, offset = paging(args)
    _, exams = store().search_current(patient_ids=patients, statuses=SIGNED, limit=10_000)
    found = [(current.exam.patient_id, o) for current in exams for o in observations(current)
             if all(any(_has_code(o, system, code) for system, code in alternatives)
                    for alternatives in codes)]
    served = found[offset:offset + count]
    search_of(OBS, (patient for patient, _ in served))
    base = base_url()
    entries = [{"fullUrl": f"{base}/{OBS}/{o['id']}", "resource": o,
                "search": {"mode": "match"}} for _, o in served]
    return fhir_response(searchset(OBS, args, total=len(found), count=count, offset=offset,
                                   entries=entries, ignored=ignored))


@bp.get(f"/{OBS}/<fhir_id:id_>")
@requires_scope("Observation", "r")
def read_observation(id_: str) -> Response:
    """One Observation of a signed exam's current revision, by the id search gives it."""
    unknown = NotFoundError(f"{OBS}/{id_} is not known to this server.")
    match = _OBSERVATION_ID.fullmatch(id_)
    if match is None:
        raise unknown
    try:
        current = store().current(match.group(1))
    except NotFoundError:
        raise unknown from None
    found = next((o for o in observations(current) if o["id"] == id_), None)
    if found is None:  # the exam is known, so is its patient: a refused read of their data
        refused_read(f"{OBS}/{id_}", current.exam.patient_id, unknown.message)
        raise unknown
    read_of(f"{OBS}/{id_}", current.exam.patient_id)
    return _versioned(found)


def observations(current: store_mod.Current) -> list[dict[str, Any]]:
    """The Observations the EHR received for the exam's current signed revision (none
    for a draft), as served here: our ids, meta, and references that resolve here."""
    revision = current.revision
    if revision is None:
        return []
    knowledge = kb()
    exam = pipeline.exam_from_input(knowledge, dict(revision.response),
                                    now=revision.signed_at)
    record = bundle.extraction(exam, knowledge.mappings_for(exam.form),
                               plugin_version=__version__,
                               recorded=revision.signed_at.isoformat(timespec="seconds"))
    exam_id = current.exam.id
    local = {e["fullUrl"]: f"{QR}/{exam_id}" for e in record["entry"]
             if e["resource"]["resourceType"] == QR}
    found = [e for e in record["entry"] if e["resource"]["resourceType"] == OBS]
    local.update({e["fullUrl"]: f"{OBS}/{_observation_id(exam_id, e['fullUrl'])}"
                  for e in found})
    result = []
    for entry in found:
        resource = _localised(entry["resource"], local)
        if isinstance(resource.get("subject"), Mapping):
            resource["subject"] = {**resource["subject"],
                                   "reference": f"Patient/{current.exam.patient_id}"}
        result.append(_with_meta(resource, _observation_id(exam_id, entry["fullUrl"]),
                                 str(revision.number), revision.signed_at))
    return result


def _observation_id(exam_id: str, full_url: str) -> str:
    return f"{exam_id}-{full_url.removeprefix('urn:uuid:').replace('-', '')[:16]}"


def _localised(value: Any, local: Mapping[str, str]) -> Any:
    """``value`` with every reference to a Bundle entry served here rewritten to its
    address on this server."""
    if isinstance(value, Mapping):
        return {k: (local.get(v, v) if k == "reference" and isinstance(v, str)
                    else _localised(v, local)) for k, v in value.items()}
    if isinstance(value, list):
        return [_localised(v, local) for v in value]
    return value


def _has_code(observation: Mapping[str, Any], system: str | None, code: str | None) -> bool:
    return any((system is None or c.get("system", "") == system)
               and (code is None or c.get("code") == code)
               for c in observation["code"].get("coding", []))


def _read_version(current: store_mod.Current, vid: str) -> None:
    read_of(f"{QR}/{current.exam.id}/_history/{vid}", current.exam.patient_id,
            interaction="vread")


# --- versions and meta -------------------------------------------------------------------------

def _current(id_: str) -> store_mod.Current:
    try:
        return store().current(id_)
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


# --- QuestionnaireResponse search values ------------------------------------------------------

def _status(value: str) -> str | None:
    """A status token (``code`` or ``system|code``); None when it can never match."""
    system, code = token(value)
    if code not in QR_STATUSES:
        raise InputError(f"status={value!r} is not a QuestionnaireResponse status "
                         f"({', '.join(QR_STATUSES)}).", expression="status")
    if system not in (None, "", QR_STATUS_SYSTEM):
        return None
    return code if code in store_mod.CURRENT_STATUSES else None
