"""The stored exams on the FHIR API: QuestionnaireResponse read, vread, history and search,
Patient read, and the signed exams' Observations (search, read and vread).

A blueprint nested in ``fhir_api.bp`` (so under ``/fhir``, with its ``_format`` check);
the request conventions come from ``fhir_rest``. Nothing here writes.

Versions of a stored exam (``meta.versionId``, ETag ``W/"<versionId>"``): a signed exam's
current version is its latest revision and its versionId the revision number ("1", "2",
...); every revision stays readable for good (vread). An exam never signed shows its
in-progress draft as ``draft-<n>``, n the store's write counter, so the ETag changes with
every autosave; drafts are not kept, so vread of a draft version answers only while it is
current. An amendment in progress is not shown: the latest signed revision stays current.

Observations are stored with the revision that recorded them, at its signature
(``record.observations``: exactly the Observations of the record Bundle the EHR
receives, with references that resolve here), and read from there, never derived again:
search and read find those of each exam's current signed revision (drafts have none; an
amended exam shows only its amended revision's). An id is ``<exam id>-<16 hex digits>``,
stable across amendments while the finding is recorded; an id the current revision no
longer records (an amendment removed the finding) is 410 Gone on read, and every
revision's version stays readable by vread (``Observation/<id>/_history/<revision>``).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response
from werkzeug.http import http_date

from ..adapters import store as store_mod
from ..errors import GoneError, InputError, NotFoundError
from .audit import read_of, refused_read, search_of
from .auth import requires_scope
from .errors import fhir_response
from .fhir_rest import (base_url, date_ranges, paging, patient_ids, register_converter,
                        search_args, searchset, split_values, store, token)

bp = Blueprint("records", __name__)
bp.record_once(register_converter)

#: QuestionnaireResponse search (``_offset`` is ours: the next/previous page links use it).
RECORD_PARAMETERS = ("patient", "subject", "status", "authored", "_count", "_offset",
                     "_format")
#: Observation search: ``patient`` or ``subject`` is required (no unbounded scans).
OBSERVATION_PARAMETERS = ("patient", "subject", "code", "date", "_sort", "_count", "_offset",
                          "_format")
#: Observation search orders: by date (the effective time), oldest or newest first.
OBSERVATION_SORTS = ("date", "-date")
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


# --- Observation: search, read and vread ------------------------------------------------------

@bp.get(f"/{OBS}")
@requires_scope("Observation", "s")
def search_observations() -> Response:
    """The Observations of the patient's signed exams (each exam's current revision), as
    stored at signature. Newest first (``_sort=-date``, the default; ``_sort=date`` oldest
    first), then by exam and in form order; ``code`` tokens match any of an Observation's
    codings; ``date`` (the effective time, the signature's) takes the date prefixes.
    Repeated parameters AND, commas OR; paged by _count."""
    args, ignored = search_args(OBSERVATION_PARAMETERS, OBS)
    patients = patient_ids(args)
    if patients is None:
        raise InputError("Observation search needs patient (or subject): this server does "
                         "not search every patient's Observations at once.",
                         expression="patient", code="required")
    codes = [[token(v) for v in split_values(value)] for name, value in args if name == "code"]
    dates = [[r for v in split_values(value) for r in date_ranges(v, "date")]
             for name, value in args if name == "date"]
    count, offset = paging(args)
    total, page = store().search_observations(patient_ids=patients, codes=codes, dates=dates,
                                              sort=_sort(args), limit=count, offset=offset)
    search_of(OBS, (o.patient_id for o in page))
    base = base_url()
    entries = [{"fullUrl": f"{base}/{OBS}/{o.id}", "resource": o.resource,
                "search": {"mode": "match"}} for o in page]
    return fhir_response(searchset(OBS, args, total=total, count=count, offset=offset,
                                   entries=entries, ignored=ignored))


@bp.get(f"/{OBS}/<fhir_id:id_>")
@requires_scope("Observation", "r")
def read_observation(id_: str) -> Response:
    """One Observation of a signed exam's current revision, by the id search gives it.
    An id the current revision no longer records (an amendment dropped the finding) is
    410 Gone: it was served once and its revisions stay readable by vread."""
    versions = _observation_versions(id_)
    current = versions.current
    if current is None:
        if versions.records:
            gone = GoneError(f"{OBS}/{id_} is not in the exam's current revision "
                             f"({versions.current_revision}): an amendment removed it. "
                             f"Earlier versions: " + ", ".join(
                                 f"{OBS}/{id_}/_history/{r.revision}"
                                 for r in versions.records) + ".")
            refused_read(f"{OBS}/{id_}", versions.patient_id, gone.message, code="deleted")
            raise gone
        unknown = NotFoundError(f"{OBS}/{id_} is not known to this server.")
        refused_read(f"{OBS}/{id_}", versions.patient_id, unknown.message)
        raise unknown
    read_of(f"{OBS}/{id_}", versions.patient_id)
    return _versioned(dict(current.resource))


@bp.get(f"/{OBS}/<fhir_id:id_>/_history/<vid>")
@requires_scope("Observation", "r")
def vread_observation(id_: str, vid: str) -> Response:
    """One Observation as a signed revision recorded it (versionId = revision number),
    current or not."""
    versions = _observation_versions(id_)
    found = next((r for r in versions.records if str(r.revision) == vid), None)
    if found is None:
        missing = NotFoundError(f"{OBS}/{id_} has no version {vid}.")
        refused_read(f"{OBS}/{id_}/_history/{vid}", versions.patient_id, missing.message,
                     interaction="vread")
        raise missing
    read_of(f"{OBS}/{id_}/_history/{vid}", versions.patient_id, interaction="vread")
    return _versioned(dict(found.resource))


def _observation_versions(id_: str) -> store_mod.observation_store.Versions:
    """What is stored under an Observation id; 404 (not audited: it names no stored exam,
    so nobody) when the id cannot be ours or its exam is unknown."""
    match = _OBSERVATION_ID.fullmatch(id_)
    try:
        if match is None:
            raise NotFoundError("malformed")
        return store().observation_versions(match.group(1), id_)
    except NotFoundError:
        raise NotFoundError(f"{OBS}/{id_} is not known to this server.") from None


def _sort(args: list[tuple[str, str]]) -> str:
    values = [v for k, v in args if k == "_sort"]
    if len(values) > 1:
        raise InputError("_sort may be given only once.", expression="_sort")
    if values and values[0] not in OBSERVATION_SORTS:
        raise InputError(f"_sort={values[0]!r} is not supported; Observation search sorts "
                         f"by {' or '.join(OBSERVATION_SORTS)}.", expression="_sort",
                         code="not-supported")
    return values[0] if values else "-date"


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
