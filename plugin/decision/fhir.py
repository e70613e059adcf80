"""The Assessment as FHIR R4: a Condition per suggested condition, a ServiceRequest per
referral, both plainly marked as decision-support suggestions; and the clinician's own
impression and plan (``clinician_resources``) apart from them: the working diagnosis
(Condition), the referrals made (ServiceRequest orders) and a ClinicalImpression that
carries the clinician's note even when no working diagnosis was chosen.

Conditions carry ``verificationStatus = differential`` and cite the Observations behind
their supporting findings as evidence; ServiceRequests are ``status = draft``,
``intent = proposal`` with the FHIR priority and the Conditions/Observations they rest
on as ``reasonReference``. Codes: the verified standard code where clinical.md lists one,
always alongside our own ``decision-support`` code.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..core import terminology as t
from .assessment import Assessment, Candidate, Referral
from .catalogue import DecisionKnowledge, ServiceDef
from .impression import Impression, orders
from .predicates import Source

#: Resolves an answer to the reference of its Observation (None when not extracted).
Resolver = Callable[[Source], Mapping[str, Any] | None]

SUGGESTION = "Decision-support suggestion, not a diagnosis or an order; the clinician decides."


def resources(assessment: Assessment, *, exam_id: str, subject: Mapping[str, Any],
              encounter: Mapping[str, Any] | None, authored: str | None,
              resolve: Resolver, full_url: Callable[[Mapping[str, str]], str]
              ) -> list[dict[str, Any]]:
    """Conditions for the suggested candidates (rank order), then ServiceRequests
    (priority order); low-likelihood candidates stay in the JSON differential only."""
    suggested = [c for c in assessment.differential if c.suggested]
    conditions = [_condition(c, exam_id, subject, encounter, authored, resolve)
                  for c in suggested]
    condition_urls = {c.condition.id: full_url(r["identifier"][0])
                      for c, r in zip(suggested, conditions)}
    side = assessment.facts.affected_side
    requests = [_service_request(r, exam_id, subject, encounter, authored, resolve,
                                 condition_urls, side) for r in assessment.referrals]
    return conditions + requests


def _service_codes(service: ServiceDef, side: str | None) -> list[Mapping[str, str]]:
    """The verified codes for a service, side-specific where one exists."""
    return list(service.codes_by_side.get(side or "", service.codes))


def _references(sources: Any, resolve: Resolver) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for source in sorted(sources, key=lambda s: (s[0], str(s[1]))):
        ref = resolve(source)
        if ref is not None:
            seen.setdefault(ref["reference"], dict(ref))
    return list(seen.values())


def _condition(c: Candidate, exam_id: str, subject: Mapping[str, Any],
               encounter: Mapping[str, Any] | None, authored: str | None,
               resolve: Resolver) -> dict[str, Any]:
    display = c.condition.display
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "identifier": [{"system": t.ID_CONDITION, "value": f"{exam_id}/{c.condition.id}"}],
        "clinicalStatus": {"coding": [{"system": t.CONDITION_CLINICAL, "code": "active",
                                       "display": "Active"}]},
        "verificationStatus": {"coding": [{"system": t.CONDITION_VERIFICATION,
                                           "code": "differential", "display": "Differential"}]},
        "category": [{"coding": [{"system": t.CONDITION_CATEGORY, "code": "encounter-diagnosis",
                                  "display": "Encounter Diagnosis"}]}],
        "code": {"coding": [*(dict(x) for x in c.condition.codes),
                            {"system": t.DECISION_SUPPORT, "code": c.condition.id,
                             "display": display}], "text": display},
        "subject": dict(subject),
    }
    if encounter:
        resource["encounter"] = dict(encounter)
    if authored:
        resource["recordedDate"] = authored
    sources = frozenset().union(*(e.finding.sources for e in c.for_ if e.weight > 0))
    detail = _references(sources, resolve)
    if detail:
        resource["evidence"] = [{"detail": detail}]
    against = "; ".join(e.label for e in c.against if e.weight) or "none recorded"
    resource["note"] = [{"text": (
        f"Ranked {c.rank} in the differential: likelihood {c.likelihood}, score {c.score:g}, "
        f"confidence {c.confidence}. For: {'; '.join(e.label for e in c.for_ if e.weight)}. "
        f"Against: {against}. {SUGGESTION}")}]
    return resource


def _service_request(r: Referral, exam_id: str, subject: Mapping[str, Any],
                     encounter: Mapping[str, Any] | None, authored: str | None,
                     resolve: Resolver, condition_urls: Mapping[str, str],
                     side: str | None) -> dict[str, Any]:
    display = r.service.display
    side_code = side if r.service.category == "imaging" else None
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": t.ID_SERVICE_REQUEST, "value": f"{exam_id}/{r.service.id}"}],
        "status": "draft", "intent": "proposal", "priority": r.priority,
        "code": {"coding": [*(dict(x) for x in _service_codes(r.service, side_code)),
                            {"system": t.DECISION_SUPPORT, "code": r.service.id,
                             "display": display}], "text": display},
    }
    if r.focus:
        resource["orderDetail"] = [{"text": f.focus} for f in r.focus]
    resource["subject"] = dict(subject)
    if encounter:
        resource["encounter"] = dict(encounter)
    if authored:
        resource["authoredOn"] = authored
    resource["reasonCode"] = [{"text": r.reason}]
    reasons = [{"reference": condition_urls[c], "type": "Condition"}
               for c in r.conditions if c in condition_urls]
    reasons += _references(r.sources, resolve)
    if reasons:
        resource["reasonReference"] = reasons
    resource["note"] = [{"text": f"Timing: {r.timing} {SUGGESTION}"}]
    return resource


def clinician_resources(impression: Impression, assessment: Assessment,
                        knowledge: DecisionKnowledge, *, exam_id: str,
                        subject: Mapping[str, Any], encounter: Mapping[str, Any] | None,
                        authored: str | None, author: Mapping[str, Any] | None,
                        resolve: Resolver, full_url: Callable[[Mapping[str, str]], str]
                        ) -> list[dict[str, Any]]:
    """The clinician's decision: the working diagnosis as a Condition (provisional or
    confirmed, asserted by the signer, the note in ``Condition.note``), a
    ClinicalImpression when there is a note or a diagnosis (``_clinical_impression``),
    and each referral
    the clinician makes as an *order* (``status = active``, ``intent = order``,
    requested by the signer, ``basedOn`` the suggestion it takes up). Other identifier
    systems than the suggestions': a clinician's Condition never merges with the
    engine's differential one. A dropped suggestion sends nothing (R4 has no reason for
    a declined proposal; ``doNotPerform`` would mean "must not be done"). Identifier
    values differ from the suggestions' too (``/impression/``, ``/plan/``), for an EHR
    that matches a conditional create on the value alone."""
    result: list[dict[str, Any]] = []
    condition_url = None
    candidates = {c.condition.id: c for c in assessment.differential}
    if impression.condition is not None:
        condition = _clinician_condition(impression, knowledge, candidates.get(
            impression.condition), exam_id, subject, encounter, authored, author, resolve)
        condition_url = full_url(condition["identifier"][0])
        result.append(condition)
    if impression.note or condition_url:
        result.append(_clinical_impression(impression, exam_id, subject, encounter,
                                           authored, author, condition_url))
    suggested = {r.service.id: r for r in assessment.referrals}
    side = assessment.facts.affected_side
    for decision in orders(impression):
        service = knowledge.services[decision.service]
        proposal = suggested.get(service.id)
        side_code = side if service.category == "imaging" else None
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "identifier": [{"system": t.ID_CLINICIAN_REFERRAL,
                            "value": f"{exam_id}/plan/{service.id}"}],
        }
        if proposal is not None:
            resource["basedOn"] = [{"reference": full_url(
                {"system": t.ID_SERVICE_REQUEST, "value": f"{exam_id}/{service.id}"}),
                "type": "ServiceRequest"}]
        resource.update({
            "status": "active", "intent": "order", "priority": decision.priority,
            "code": {"coding": [*(dict(x) for x in _service_codes(service, side_code)),
                                {"system": t.DECISION_SUPPORT, "code": service.id,
                                 "display": service.display}], "text": service.display},
            "subject": dict(subject)})
        if encounter:
            resource["encounter"] = dict(encounter)
        if authored:
            resource["authoredOn"] = authored
        if author:
            resource["requester"] = dict(author)
        reason = decision.reason or (proposal.reason if proposal else None)
        if reason:
            resource["reasonCode"] = [{"text": reason}]
        reasons = [{"reference": condition_url, "type": "Condition"}] if condition_url else []
        if proposal is not None:
            reasons += _references(proposal.sources, resolve)
        if reasons:
            resource["reasonReference"] = reasons
        result.append(resource)
    return result


def _clinician_condition(impression: Impression, knowledge: DecisionKnowledge,
                         candidate: Candidate | None, exam_id: str,
                         subject: Mapping[str, Any], encounter: Mapping[str, Any] | None,
                         authored: str | None, author: Mapping[str, Any] | None,
                         resolve: Resolver) -> dict[str, Any]:
    definition = knowledge.condition(impression.condition or "")
    status = impression.status or "provisional"
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "identifier": [{"system": t.ID_CLINICIAN_CONDITION,
                        "value": f"{exam_id}/impression/{definition.id}"}],
        "clinicalStatus": {"coding": [{"system": t.CONDITION_CLINICAL, "code": "active",
                                       "display": "Active"}]},
        "verificationStatus": {"coding": [{"system": t.CONDITION_VERIFICATION,
                                           "code": status, "display": status.capitalize()}]},
        "category": [{"coding": [{"system": t.CONDITION_CATEGORY, "code": "encounter-diagnosis",
                                  "display": "Encounter Diagnosis"}]}],
        "code": {"coding": [*(dict(x) for x in definition.codes),
                            {"system": t.DECISION_SUPPORT, "code": definition.id,
                             "display": definition.display}], "text": definition.display},
        "subject": dict(subject),
    }
    if encounter:
        resource["encounter"] = dict(encounter)
    if authored:
        resource["recordedDate"] = authored
    if author:
        resource["asserter"] = dict(author)
    if candidate is not None:  # the findings that support it, when the engine weighed it
        sources = frozenset().union(*(e.finding.sources for e in candidate.for_ if e.weight > 0))
        detail = _references(sources, resolve)
        if detail:
            resource["evidence"] = [{"detail": detail}]
    if impression.note:
        resource["note"] = [{"text": impression.note}]
    return resource


def _clinical_impression(impression: Impression, exam_id: str, subject: Mapping[str, Any],
                         encounter: Mapping[str, Any] | None, authored: str | None,
                         author: Mapping[str, Any] | None,
                         condition_url: str | None) -> dict[str, Any]:
    """The clinician's assessment as a ClinicalImpression. Why: with no working
    diagnosis the note had no structured home (``Condition.note`` needs a Condition) and
    reached the EHR only inside the summary PDF. The note is its ``summary``, the
    working diagnosis (when chosen) its ``finding``; ``assessor`` is the signer, as the
    Condition's ``asserter``. One per exam (``<exam>/impression``): a retry matches it."""
    resource: dict[str, Any] = {
        "resourceType": "ClinicalImpression",
        "identifier": [{"system": t.ID_CLINICIAN_IMPRESSION, "value": f"{exam_id}/impression"}],
        "status": "completed",
        "description": "The examining clinician's impression of the posterior thigh exam.",
        "subject": dict(subject),
    }
    if encounter:
        resource["encounter"] = dict(encounter)
    if authored:
        resource["effectiveDateTime"] = authored
        resource["date"] = authored
    if author:
        resource["assessor"] = dict(author)
    if impression.note:
        resource["summary"] = impression.note
    if condition_url:
        resource["finding"] = [{"itemReference": {"reference": condition_url,
                                                  "type": "Condition"}}]
    return resource
