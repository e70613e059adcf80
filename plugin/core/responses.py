"""QuestionnaireResponse in both directions: read one into an Exam, build one from an Exam.

This is the one home of the QR's shape: groups nest in ``item``, questions carry
``answer`` with the ``value[x]`` their item type demands. A received QR is checked
against its Questionnaire (structure, types, options) and then through the same
answers schema as the plain format, so both formats give the same errors.
"""
from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal
from typing import Any

from ..errors import AnswerError, InputError
from . import answers as answers_mod
from . import fhir_models
from . import terminology as t
from .answers import Answers
from .questionnaire import ANSWER_KEYS, Form, Item, Quantity

#: A finished record (SDC extracts only these; a document of one is not a draft).
FINISHED = ("completed", "amended")
STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
#: Namespace for identifiers derived from content, so the same exam always maps to the
#: same identifiers and a repeated delivery is recognised by the EHR.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, t.BASE)


@dataclass(frozen=True)
class Context:
    """Who, when and where of an exam: everything in a QR beside its answers."""

    subject: Mapping[str, Any] | None = None
    encounter: Mapping[str, Any] | None = None
    author: Mapping[str, Any] | None = None
    authored: str | None = None
    status: str = "completed"
    based_on: tuple[Mapping[str, Any], ...] = ()
    part_of: tuple[Mapping[str, Any], ...] = ()
    identifier: str | None = None


@dataclass(frozen=True)
class Exam:
    """Validated answers to one Form, with their context.

    ``source`` keeps a received QR verbatim so nothing the sender wrote is lost when
    the response is passed on.
    """

    form: Form
    answers: Answers
    context: Context
    source: Mapping[str, Any] | None = field(default=None, compare=False)
    #: Sections whose screen was recorded negative in one tap: their item carries
    #: EXT_RECORDED_IN_ONE_STEP (a fact about how it was recorded, never an answer).
    one_step: frozenset[str] = frozenset()
    #: Answers carried from an earlier exam and not changed since: linkId -> a Reference
    #: to that exam's response (EXT_CARRIED_FORWARD on the item; ``carry_forward``).
    carried: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @cached_property
    def exam_id(self) -> str:
        """The plugin-owned identifier value: given, or derived from the content.

        Cached: it hashes every answer, and each extracted Observation needs it.
        """
        if self.context.identifier:
            return self.context.identifier
        content = {"questionnaire": self.form.canonical,
                   "subject": _identity(self.context.subject),
                   "encounter": _identity(self.context.encounter),
                   "authored": self.context.authored,
                   "answers": {k: [answers_mod.plain_value(self.form.index[k], v) for v in vs]
                               for k, vs in self.answers.items()}}
        return str(uuid.uuid5(_NAMESPACE, json.dumps(content, sort_keys=True, default=str)))


def _identity(reference: Mapping[str, Any] | None) -> Any:
    """What identifies a referenced resource; a display name may be corrected later."""
    if not reference:
        return None
    return {k: reference[k] for k in ("reference", "identifier", "type") if k in reference}


def read(form: Form, qr: Any) -> Exam:
    """Check a received QuestionnaireResponse against ``form``; errors keyed by linkId."""
    if not isinstance(qr, Mapping) or qr.get("resourceType") != "QuestionnaireResponse":
        got = qr.get("resourceType") if isinstance(qr, Mapping) else type(qr).__name__
        raise InputError(f"Expected a QuestionnaireResponse, got {got!r}.",
                         expression="resourceType")
    problems = fhir_models.validate(dict(qr))
    if problems:
        raise InputError("The QuestionnaireResponse is not valid FHIR R4.", issues=[
            ("QuestionnaireResponse." + p.partition(": ")[0], p.partition(": ")[2])
            for p in problems])
    authored = qr.get("authored")
    if authored is not None and not isinstance(authored, str):
        # fhir.resources would coerce a number into a date-time; refuse it instead, as
        # the response is passed on verbatim.
        raise InputError("authored must be a FHIR dateTime string.",
                         expression="QuestionnaireResponse.authored")
    for identifier in _listify(qr.get("identifier")):
        if not (isinstance(identifier, Mapping) and identifier.get("system")
                and identifier.get("value")):
            raise InputError("identifier needs both system and value: the EHR de-duplicates "
                             "deliveries on it.", expression="QuestionnaireResponse.identifier")
    if qr.get("status") not in STATUSES:
        raise InputError(f"Unknown status {qr.get('status')!r}; expected one of "
                         f"{', '.join(STATUSES)}.", expression="QuestionnaireResponse.status")
    errors: dict[str, list[str]] = {}
    plain: dict[str, Any] = {}
    _walk(form, qr.get("item") or [], None, plain, errors, set())
    try:
        loaded = answers_mod.load_plain(form, plain)
    except AnswerError as exc:
        for link_id, messages in exc.errors.items():
            errors.setdefault(link_id, []).extend(messages)
        loaded = {}
    if errors:
        raise AnswerError(errors)
    ours = [i.get("value") for i in _listify(qr.get("identifier"))
            if i.get("system") == t.ID_QUESTIONNAIRE_RESPONSE]
    context = Context(subject=qr.get("subject"), encounter=qr.get("encounter"),
                      author=qr.get("author"), authored=qr.get("authored"),
                      status=qr["status"], based_on=tuple(qr.get("basedOn") or ()),
                      part_of=tuple(qr.get("partOf") or ()),
                      identifier=ours[0] if ours else None)
    return Exam(form, loaded, context, source=qr, one_step=one_step_of(qr),
                carried=carried_of(qr))


def carried_of(qr: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The answers a QuestionnaireResponse marks as carried, with their source."""
    found: dict[str, Mapping[str, Any]] = {}

    def walk(nodes: Any) -> None:
        for node in nodes or []:
            if not isinstance(node, Mapping):
                continue
            for e in node.get("extension") or []:
                if isinstance(e, Mapping) and e.get("url") == t.EXT_CARRIED_FORWARD \
                        and isinstance(e.get("valueReference"), Mapping):
                    found[node.get("linkId")] = e["valueReference"]
            walk(node.get("item"))
    walk((qr or {}).get("item"))
    return found


def one_step_of(qr: Mapping[str, Any] | None) -> frozenset[str]:
    """The sections a QuestionnaireResponse marks as recorded in one step."""
    return frozenset(
        node.get("linkId") for node in (qr or {}).get("item") or []
        if isinstance(node, Mapping) and any(
            isinstance(e, Mapping) and e.get("url") == t.EXT_RECORDED_IN_ONE_STEP
            and e.get("valueBoolean") is True for e in node.get("extension") or []))


def build(exam: Exam) -> dict[str, Any]:
    """The QuestionnaireResponse for an exam, carrying the plugin-owned identifier."""
    identifier = {"system": t.ID_QUESTIONNAIRE_RESPONSE, "value": exam.exam_id}
    if exam.source is not None:
        qr = copy.deepcopy(dict(exam.source))
        qr.pop("id", None)
        qr.pop("meta", None)  # server-managed; the receiving EHR assigns its own
        if exam.context.subject and "subject" not in qr:
            qr["subject"] = dict(exam.context.subject)  # from the Patient given beside it
        others = [i for i in _listify(qr.get("identifier"))
                  if i.get("system") != t.ID_QUESTIONNAIRE_RESPONSE]
        if others:
            # R4 QR.identifier is 0..1: the sender's own identifier wins; ours rides in
            # the same slot only when the sender gave none.
            return qr
        qr["identifier"] = identifier
        return qr
    ctx = exam.context
    qr: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "identifier": identifier}
    if ctx.based_on:
        qr["basedOn"] = list(ctx.based_on)
    if ctx.part_of:
        qr["partOf"] = list(ctx.part_of)
    qr["questionnaire"] = exam.form.canonical
    qr["status"] = ctx.status
    for key, value in (("subject", ctx.subject), ("encounter", ctx.encounter),
                       ("authored", ctx.authored), ("author", ctx.author)):
        if value:
            qr[key] = value
    items = [node for node in (_node(exam, i) for i in exam.form.items) if node]
    for node in items:
        if node["linkId"] in exam.one_step:
            node["extension"] = [{"url": t.EXT_RECORDED_IN_ONE_STEP, "valueBoolean": True}]
    if items:
        qr["item"] = items
    return qr


def answer_value(item: Item, value: Any) -> dict[str, Any]:
    """The ``value[x]`` element for one typed answer."""
    if item.type == "choice":
        return {"valueCoding": dict(item.option(value).coding)}  # type: ignore[union-attr]
    if isinstance(value, Quantity):
        return {"valueQuantity": quantity(value)}
    if isinstance(value, Decimal):
        value = answers_mod.json_number(value)
    return {ANSWER_KEYS[item.type]: value}


def quantity(value: Quantity, display: str | None = None) -> dict[str, Any]:
    """A FHIR Quantity in UCUM for a typed quantity value."""
    return {"value": answers_mod.json_number(value.value), "unit": display or value.unit,
            "system": t.UCUM, "code": value.unit}


def _node(exam: Exam, item: Item) -> dict[str, Any] | None:
    if item.type == "group":
        children = [n for n in (_node(exam, c) for c in exam.form.children(item)) if n]
        return {"linkId": item.link_id, "text": item.text, "item": children} if children else None
    values = exam.answers.get(item.link_id)
    if not values:
        return None
    node = {"linkId": item.link_id, "text": item.text,
            "answer": [answer_value(item, v) for v in values]}
    if item.link_id in exam.carried:
        node["extension"] = [{"url": t.EXT_CARRIED_FORWARD,
                              "valueReference": dict(exam.carried[item.link_id])}]
    return node


def _walk(form: Form, items: list[Any], parent: str | None, plain: dict[str, Any],
          errors: dict[str, list[str]], seen: set[str]) -> None:
    """Check nesting and value types; collect answers in the plain format."""
    for node in items:
        link_id = node.get("linkId")
        item = form.item(link_id)
        if item is None:
            errors.setdefault(link_id, []).append(
                "Unknown linkId: not a question of this Questionnaire.")
            continue
        if item.parent != parent:
            where = f"under {item.parent}" if item.parent else "at the top level"
            errors.setdefault(link_id, []).append(f"Misplaced: belongs {where}.")
            continue
        if link_id in seen:
            errors.setdefault(link_id, []).append("Appears more than once.")
            continue
        seen.add(link_id)
        if item.type == "group":
            if node.get("answer"):
                errors.setdefault(link_id, []).append("A group has no answers.")
            _walk(form, node.get("item") or [], link_id, plain, errors, seen)
            continue
        if node.get("item"):
            errors.setdefault(link_id, []).append("This question has no nested items.")
        values = [_plain(item, a, errors) for a in node.get("answer") or []]
        if not values:
            continue  # an item with no answer carries nothing; the QR may keep it
        if any(v is _BAD for v in values):
            continue
        if not item.repeats and len(values) > 1:
            errors.setdefault(link_id, []).append("Only one answer is allowed.")
            continue
        plain[link_id] = values if item.repeats else values[0]


_BAD = object()


def _plain(item: Item, answer: Mapping[str, Any], errors: dict[str, list[str]]) -> Any:
    expected = ANSWER_KEYS[item.type]
    keys = [k for k in answer if k.startswith("value")]
    if answer.get("item"):
        errors.setdefault(item.link_id, []).append("This question has no nested items.")
        return _BAD
    if keys != [expected]:
        errors.setdefault(item.link_id, []).append(
            f"Expected {expected} for {'an' if item.type[0] in 'aeiou' else 'a'} {item.type} "
            f"item, got {', '.join(keys) or 'no value'}.")
        return _BAD
    value = answer[expected]
    if item.type == "choice":
        option = item.option_for_coding(value)
        if option is None:
            errors.setdefault(item.link_id, []).append(
                f"{value.get('system')}|{value.get('code')} is not an answer option.")
            return _BAD
        return option.code
    if item.type == "quantity":
        if value.get("system") != t.UCUM or "code" not in value:
            errors.setdefault(item.link_id, []).append("A quantity needs a UCUM system and code.")
            return _BAD
        number = value.get("value")
        if number is None:
            errors.setdefault(item.link_id, []).append("A quantity needs a value.")
            return _BAD
        return {"value": float(number) if not isinstance(number, int) else number,
                "unit": value["code"]}
    if item.type == "decimal" and not isinstance(value, bool):
        return float(value)
    return value


def _listify(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
