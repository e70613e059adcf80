"""From raw input to a validated Exam, the same way for every edge (CLI, API, tablet).

Input is either the plain answers format or a QuestionnaireResponse; an optional FHIR
Patient supplies the subject and, through birthDate, the age. Edges call this and then
``bundle.extraction``; none of them re-implements a step.
"""
from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from ..core import answers, bundle, json_input, patient as patient_mod, prom_extract
from ..core import prom_results, responses
from ..core.documents import Document
from ..core.responses import Context, Exam
from ..decision import assessment, facts, fhir as decision_fhir, impression as impression_mod
from ..decision.assessment import Assessment
from ..decision.episode import Visit
from ..decision.impression import Impression
from ..errors import InputError

#: The Questionnaire the plain format answers (the product has one exam).
DEFAULT_FORM = "posterior-thigh-exam"
#: Extraction reads a finished record only (SDC: extract after completion).
EXTRACTABLE = responses.FINISHED
#: A visit's completed outcome measure, checked and scored on the server
#: (``record.visit_proms.checked``), with its instrument.
Prom = tuple[Any, Mapping[str, Any]]


def extract(kb: Any, data: Any, *, patient: Mapping[str, Any] | None = None,
            now: dt.datetime, plugin_version: str) -> dict[str, Any]:
    """Input to transaction Bundle, as every edge does it: validate, require a finished
    record, assess, extract. ``now`` is the extraction time (and the stand-in
    ``authored``)."""
    exam = exam_from_input(kb, data, patient=patient, now=now)
    require_extractable(exam)
    return record(kb, exam, plugin_version=plugin_version, recorded=now)


def record(kb: Any, exam: Exam, *, plugin_version: str, recorded: dt.datetime,
           documents: Sequence[Document] = (),
           impression: Impression = impression_mod.NONE,
           assessed: Assessment | None = None,
           proms: Sequence[Prom] = ()) -> dict[str, Any]:
    """The exam, its assessment, the clinician's impression and plan (signed with it),
    the visit's completed outcome measures (each response and its survey Observations)
    and its rendered documents (each as a DocumentReference) as one transaction
    Bundle. ``assessed``: the assessment already made (a follow-up's, over its episode:
    the EHR gets what the clinician reviewed); by default the exam's own."""
    result = assessed if assessed is not None else assess_exam(kb, exam, proms)
    assert not proms or exam.context.subject is not None, "a PROM is about its patient"
    more = prom_extract.visit_entries(
        proms, exam_id=exam.exam_id, subject=exam.context.subject or {},
        encounter=exam.context.encounter, author=exam.context.author,
        meanings=kb.interpretations)

    def derived(resolve: bundle.Resolve) -> list[dict[str, Any]]:
        assert exam.context.subject is not None  # bundle derives only for a subject
        context = {"exam_id": exam.exam_id, "subject": exam.context.subject,
                   "encounter": exam.context.encounter, "authored": exam.context.authored,
                   "resolve": resolve, "full_url": bundle.full_url}
        return (decision_fhir.resources(result, **context)
                + decision_fhir.clinician_resources(impression, result, kb.decision,
                                                    author=exam.context.author, **context))
    return bundle.extraction(exam, kb.mappings_for(exam.form), plugin_version=plugin_version,
                             recorded=recorded.isoformat(timespec="seconds"),
                             derived=derived, documents=documents, more=more)


def assess_exam(kb: Any, exam: Exam, proms: Sequence[Prom] = (), *,
                prior: Sequence[Visit] = (), on: dt.date | None = None) -> Assessment:
    """The decision engine over an exam's answers (age included, prefilled from the
    Patient when one was given), the visit's outcome measures and, for a follow-up, the
    episode's earlier visits. Pure: the same exam always gives the same result."""
    return assess_answers(kb, exam.answers, proms, prior=prior, on=on)


def assess_answers(kb: Any, typed: answers.Answers, proms: Sequence[Prom] = (), *,
                   prior: Sequence[Visit] = (), on: dt.date | None = None) -> Assessment:
    """The decision engine over validated answers (a draft's valid part, for review),
    the visit's outcome measures — their bands are the engine's only PROM facts
    (``decision.facts.Facts.scores``) — and ``prior``, a follow-up's earlier signed
    visits (``record.visits.prior_visits``; ``on``: this visit's date). Without PROMs
    or prior visits, the assessment is the exam's alone."""
    scores = prom_results.bands(prom_results.results(proms, kb.interpretations)) \
        if proms else None
    return assessment.assess(kb.decision, facts.from_answers(typed, scores=scores),
                             prior, on=on)


def suggested_referrals(result: Assessment) -> list[tuple[str, str]]:
    """The suggested referrals as ``(service, priority)``, in the assessment's order:
    what the clinician's referral decisions are read against."""
    return [(r.service.id, r.priority) for r in result.referrals]


def red_flag_alert(kb: Any, typed: answers.Answers) -> dict[str, Any]:
    """The red flags the answers raise, as the exam pages show them at once: the
    assessment's urgency and each flag's display and action (the review banner's words,
    from ``mappings/decision/red-flags.json``)."""
    return _alert(assessment.red_flags(kb.decision, facts.from_answers(typed)))


def _alert(raised: Sequence[Any]) -> dict[str, Any]:
    urgency = min((f.definition.urgency for f in raised), key=assessment.URGENCY_ORDER.index,
                  default="routine")
    return {"urgency": urgency, "flags": [
        {"id": f.definition.id, "display": f.definition.display,
         "urgency": f.definition.urgency, "action": f.definition.action} for f in raised]}


_TRIGGERS: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def red_flag_triggers(kb: Any, form: Any, link_ids: Sequence[str]) -> dict[str, Any]:
    """For the questions of one page: which single answer raises which red flag
    (``{linkId: {answer: [flag id]}}``, answers as the page sends them: ``"true"`` or an
    option code) and each flag's words, so the page alerts the moment it is tapped,
    offline too. Derived by running the red-flag rules on each answer alone; what only
    a combination raises is alerted after the autosave (``red_flag_alert``)."""
    cache = _TRIGGERS.setdefault(form, {})
    key = "\x1f".join(link_ids)
    if key not in cache:
        triggers: dict[str, dict[str, list[str]]] = {}
        flags: dict[str, Any] = {}
        for link_id in link_ids:
            item = form.item(link_id)
            if item is None or item.type not in ("boolean", "choice"):
                continue
            values = [True] if item.type == "boolean" else [o.code for o in item.options]
            for value in values:
                typed = MappingProxyType({link_id: (value,)})
                alert = _alert(assessment.red_flags(kb.decision, facts.from_answers(typed)))
                if alert["flags"]:
                    shown = "true" if value is True else value
                    triggers.setdefault(link_id, {})[shown] = [f["id"] for f in alert["flags"]]
                    flags.update({f["id"]: f for f in alert["flags"]})
        cache[key] = {"triggers": triggers, "flags": flags}
    return cache[key]


#: Why an exam without a subject carries no Conditions or ServiceRequests.
NO_SUBJECT = ("The assessment is not in the Bundle: Condition and ServiceRequest need a "
              "subject. Send a Patient (or a response with a subject) to include it.")


def exam_from_input(kb: Any, data: Any, *, patient: Mapping[str, Any] | None = None,
                    now: dt.datetime, form: Any = None) -> Exam:
    """Validate ``data`` (plain answers or a QR) into an Exam; ``now`` stands in for a
    missing ``authored`` (plain answers carry no time of their own). Plain answers
    answer ``form`` (a stored exam's own, e.g. a follow-up's), by default the initial
    exam's; a QR names its own Questionnaire."""
    # the strict JSON rules (depth, text any encoder can write) hold however the input
    # arrived, before anything below reads it; a non-finite answer is the answers
    # schema's to report, by linkId
    json_input.check(data, "The answers", numbers=False)
    json_input.check(patient, "The Patient", numbers=False)
    if patient is not None:
        patient = patient_mod.check(patient)
    if isinstance(data, Mapping) and "resourceType" in data:
        exam = _from_response(kb, data)
    else:
        form = form if form is not None else kb.forms.get(DEFAULT_FORM)
        if form is None:
            raise InputError(f"Questionnaire {DEFAULT_FORM!r} is not loaded.", status=422,
                             code="not-found")
        exam = Exam(form, answers.load_plain(form, data),
                    Context(authored=now.isoformat(timespec="seconds")))
    if patient is not None:
        on = _date_of(exam.context.authored) or now.date()
        filled = patient_mod.prefill_age(exam.answers, patient, on)
        ordered = {i.link_id: filled[i.link_id] for i in exam.form.answerable if i.link_id in filled}
        context = exam.context
        if context.subject is None:
            context = replace(context, subject=patient_mod.reference(patient))
        exam = replace(exam, answers=MappingProxyType(ordered), context=context)
    return exam


def require_extractable(exam: Exam) -> None:
    """Refuse to extract a response that is still being filled in."""
    if exam.context.status not in EXTRACTABLE:
        raise InputError(f"Cannot extract from a response with status "
                         f"{exam.context.status!r}; it must be completed or amended.",
                         expression="QuestionnaireResponse.status", status=422,
                         code="business-rule")


def _from_response(kb: Any, qr: Mapping[str, Any]) -> Exam:
    if qr.get("resourceType") != "QuestionnaireResponse":
        raise InputError(f"Expected a QuestionnaireResponse or plain answers, got "
                         f"{qr.get('resourceType')!r}.", expression="resourceType")
    canonical = qr.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        raise InputError("The QuestionnaireResponse does not name its Questionnaire.",
                         expression="QuestionnaireResponse.questionnaire", status=422,
                         code="required")
    form = kb.form_for(canonical)
    if form is None:
        # Named in the body, not the URL: the request is unprocessable (422), not a 404.
        raise InputError(f"Unknown Questionnaire {canonical!r}.", status=422, code="not-found",
                         expression="QuestionnaireResponse.questionnaire")
    return responses.read(form, qr)


def _date_of(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None
