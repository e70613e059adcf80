"""The transaction Bundle an EHR can accept, safe to post again.

Every entry is a conditional create (``ifNoneExist``) on an identifier the plugin owns,
and every fullUrl is a ``urn:uuid`` derived from that identifier, so the same exam always
yields the same Bundle and a re-post creates nothing new. A Device names the plugin and
its version; a Provenance links the extracted Observations (and the assessment and
documents) to their source response.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import documents as documents_mod
from . import observations as observations_mod
from . import responses
from . import terminology as t
from .datetimes import is_instant
from .documents import Document
from .mapping import ObservationMappings
from .responses import Exam

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, t.BASE + "/bundle")
PLUGIN_NAME = "Posterior thigh exam plugin"
#: ``(linkId, value)`` of an answer -> a Reference to its Observation, if one was extracted.
Resolve = Callable[[tuple[str, Any]], dict[str, Any] | None]
#: Builds the resources derived from the exam (the assessment's) given a Resolve.
Derived = Callable[[Resolve], list[dict[str, Any]]]


#: SDC: when nothing maps to an Observation, extraction succeeds with a warning.
NOTHING_EXTRACTED = ("Nothing to extract: no answer in this response maps to an Observation; "
                     "the Bundle holds only the QuestionnaireResponse and its provenance.")


def extracted_nothing(result: Mapping[str, Any]) -> bool:
    """Whether an extraction Bundle holds no Observation."""
    return not any(e["resource"]["resourceType"] == "Observation" for e in result["entry"])


def full_url(identifier: Mapping[str, str]) -> str:
    """A stable urn:uuid for the resource carrying ``identifier``."""
    return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, f"{identifier['system']}|{identifier['value']}"))


def extraction(exam: Exam, mappings: ObservationMappings, *, plugin_version: str,
               recorded: str, derived: Derived | None = None,
               documents: Sequence[Document] = (),
               more: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """QR + Observations (+ the assessment's Conditions and ServiceRequests) (+ one
    DocumentReference per document) + Device + Provenance as one transaction Bundle.

    ``derived`` builds the assessment's resources (Conditions, ServiceRequests) from
    the Observations and a resolver of ``(linkId, value)`` to an Observation reference;
    the caller owns the engine, so the core never imports it.
    ``recorded`` (an instant) is when the plugin did the extraction; it is only used
    when the response has no full ``authored`` date-time to stand for it (in the
    Provenance and as the documents' date), so the same exam gives the same Bundle. The
    assessment is included only for an exam with a subject (Condition and
    ServiceRequest require one); documents always are, with the subject when there is
    one, and each names the QuestionnaireResponse it was made from in
    ``context.related``. ``more``: ready entries that belong to the same record (a
    visit's outcome measures: ``prom_extract.visit_entries``), after the Observations.
    """
    qr = responses.build(exam)
    qr_identifier = qr["identifier"]
    qr_url = full_url(qr_identifier)
    source = {"reference": qr_url, "type": "QuestionnaireResponse"}
    observations = observations_mod.extract(exam, mappings, source)
    device = _device(plugin_version)
    device_url = full_url(device["identifier"][0])
    entries = [_entry(qr_url, qr, qr_identifier)]
    entries += [_entry(full_url(o["identifier"][0]), o, o["identifier"][0]) for o in observations]
    entries += [dict(e) for e in more]
    if derived is not None and exam.context.subject:
        entries += [_entry(full_url(r["identifier"][0]), r, r["identifier"][0])
                    for r in derived(observation_resolver(exam, observations))]
    kinds = [d.kind for d in documents]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"One document per kind: got {sorted(kinds)}; each kind is one "
                         "identifier, so a second would never reach the EHR.")
    when = _recorded(exam, recorded)
    for document in documents:
        reference = documents_mod.document_reference(exam, document, created=when,
                                                     related=source)
        entries.append(_entry(full_url(reference["identifier"][0]), reference,
                              reference["identifier"][0]))
    entries.append(_entry(device_url, device, device["identifier"][0]))
    provenance = _provenance(exam, qr_url, [(e["fullUrl"], e["resource"]["resourceType"])
                                           for e in entries[1:-1]], device_url,
                             plugin_version, recorded)
    # no identifier in R4 and no chained query (no EHR promises one): the plugin's own
    # meta.tag finds it again; the delivery uses entity or target where _tag is not
    # declared (adapters/ehr_capability)
    tag = {"system": t.TAG_RECORD_PROVENANCE, "code": qr_identifier["value"]}
    entries.append({
        "fullUrl": full_url({"system": t.ID_QUESTIONNAIRE_RESPONSE + "/provenance",
                             "value": qr_identifier["value"]}),
        "resource": {"resourceType": "Provenance", "meta": {"tag": [tag]},
                     **{k: v for k, v in provenance.items() if k != "resourceType"}},
        "request": {"method": "POST", "url": "Provenance",
                    "ifNoneExist": f"_tag={tag['system']}|{tag['code']}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def observation_resolver(exam: Exam, observations: Sequence[Mapping[str, Any]]) -> Resolve:
    """How a derived resource points at the Observation extracted from ``(linkId,
    value)``: its Bundle fullUrl, or None when nothing was extracted from it."""
    by_identifier = {o["identifier"][0]["value"]: full_url(o["identifier"][0]) for o in observations}

    def resolve(source: tuple[str, Any]) -> dict[str, Any] | None:
        link_id, value = source
        suffix = f"/{value}" if value is not None else ""
        url = by_identifier.get(f"{exam.exam_id}/{link_id}{suffix}")
        return {"reference": url, "type": "Observation"} if url else None
    return resolve


def collection(transaction: Mapping[str, Any], resource_types: tuple[str, ...]) -> dict[str, Any]:
    """A ``collection`` Bundle of the entries of ``resource_types`` plus everything they
    refer to inside ``transaction``, so every reference in it resolves."""
    by_url = {e["fullUrl"]: e["resource"] for e in transaction["entry"]}
    wanted = [e["fullUrl"] for e in transaction["entry"]
              if e["resource"]["resourceType"] in resource_types]
    keep: dict[str, None] = {}
    stack = list(reversed(wanted))
    while stack:
        url = stack.pop()
        if url in keep or url not in by_url:
            continue
        keep[url] = None
        stack.extend(reversed(references_in(by_url[url])))
    order = [e["fullUrl"] for e in transaction["entry"] if e["fullUrl"] in keep]
    result: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    if order:  # FHIR JSON has no empty arrays
        result["entry"] = [{"fullUrl": u, "resource": by_url[u]} for u in order]
    return result


def references_in(value: Any) -> list[str]:
    """Every ``reference`` string anywhere in a resource (or any JSON tree), in order."""
    if isinstance(value, Mapping):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in references_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in references_in(v)]
    return []


def _entry(url: str, resource: dict[str, Any], identifier: Mapping[str, str]) -> dict[str, Any]:
    query = f"identifier={identifier.get('system', '')}|{identifier['value']}"
    return {"fullUrl": url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": query}}


def _device(version: str) -> dict[str, Any]:
    return {"resourceType": "Device",
            "identifier": [{"system": t.ID_DEVICE, "value": f"posterior-thigh-exam-plugin/{version}"}],
            "status": "active",
            "deviceName": [{"name": PLUGIN_NAME, "type": "user-friendly-name"}],
            "version": [{"value": version}]}


def _provenance(exam: Exam, qr_url: str, targets: list[tuple[str, str]], device_url: str, version: str,
                recorded: str) -> dict[str, Any]:
    agents: list[dict[str, Any]] = [{
        "type": {"coding": [{"system": t.PROVENANCE_PARTICIPANT_TYPE, "code": "assembler",
                             "display": "Assembler"}]},
        "who": {"reference": device_url, "type": "Device",
                "display": f"{PLUGIN_NAME} {version}"}}]
    if exam.context.author:
        agents.append({"type": {"coding": [{"system": t.PROVENANCE_PARTICIPANT_TYPE,
                                            "code": "author", "display": "Author"}]},
                       "who": dict(exam.context.author)})
    return {"resourceType": "Provenance",
            "target": ([{"reference": u, "type": kind} for u, kind in targets]
                       or [{"reference": qr_url, "type": "QuestionnaireResponse"}]),
            "recorded": _recorded(exam, recorded),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                     "code": "CREATE", "display": "create"}]},
            "agent": agents,
            "entity": [{"role": "source",
                        "what": {"reference": qr_url, "type": "QuestionnaireResponse"}}]}


def _recorded(exam: Exam, recorded: str) -> str:
    """When the record was made: the response's ``authored`` when it is a full
    date-time, else the extraction time."""
    authored = exam.context.authored
    return authored if authored and is_instant(authored) else recorded
