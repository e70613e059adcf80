"""A FHIR Questionnaire read into frozen records: the Form the rest of the pipeline speaks.

Parsing checks what the pipeline relies on (unique linkIds, supported item types, ranges
that make sense, enableWhen pointing at real questions, answer options the plain answers
format can name) so a faulty definition stops start-up instead of failing an exam.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..errors import KnowledgeError
from . import terminology as t

#: Item types the answers schema, the response builder and the extractor all handle.
ANSWER_TYPES = ("boolean", "integer", "decimal", "date", "dateTime", "string", "text",
                "choice", "quantity")
ENABLE_OPERATORS = ("exists", "=", "!=", ">", "<", ">=", "<=")
ANSWER_KEYS = {"boolean": "valueBoolean", "integer": "valueInteger", "decimal": "valueDecimal",
               "date": "valueDate", "dateTime": "valueDateTime", "string": "valueString",
               "text": "valueString", "choice": "valueCoding", "quantity": "valueQuantity"}


@dataclass(frozen=True)
class Option:
    """One answer option: the short code of the plain format and the coding it stands for."""

    code: str
    coding: Mapping[str, str]
    label: str = ""
    #: Chosen, it excludes every other option of the item ("None": the
    #: questionnaire-optionExclusive extension).
    exclusive: bool = False

    @property
    def display(self) -> str:
        """What people read: the exam-answers display, else the coding's own."""
        return self.label or self.coding.get("display", self.code)


@dataclass(frozen=True)
class Quantity:
    """A value with a UCUM unit code, as answered or as a bound."""

    value: int | Decimal
    unit: str


#: Seconds per UCUM time unit, to compare a quantity with bounds in another unit.
#: ``mo`` and ``a`` are UCUM's mean Julian month and year.
SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 604800,
           "mo": Decimal("2629800"), "a": 31557600}


def seconds(quantity: Quantity) -> Decimal:
    """A time quantity in seconds (its unit must be in SECONDS)."""
    return Decimal(str(quantity.value)) * Decimal(SECONDS[quantity.unit])


@dataclass(frozen=True)
class Condition:
    """One enableWhen: ``question`` ``operator`` ``answer`` (plain value; a code for choices)."""

    question: str
    operator: str
    answer: Any

    def describe(self) -> str:
        if self.operator == "exists":
            return f"{self.question} is {'answered' if self.answer else 'unanswered'}"
        return f"{self.question} {self.operator} {self.answer}"


@dataclass(frozen=True)
class Item:
    """A Questionnaire item with everything validation and extraction need, pre-digested."""

    link_id: str
    type: str
    text: str
    parent: str | None = None
    children: tuple[str, ...] = ()
    repeats: bool = False
    required: bool = False
    options: tuple[Option, ...] = ()
    min_value: int | Decimal | None = None
    max_value: int | Decimal | None = None
    unit: Mapping[str, str] | None = None
    unit_options: tuple[str, ...] = ()
    min_quantity: Quantity | None = None
    max_quantity: Quantity | None = None
    enable_when: tuple[Condition, ...] = ()
    enable_behavior: str = "all"
    codes: tuple[Mapping[str, str], ...] = ()
    #: How a form shows the item (SDC rendering hints): itemControl code (``slider``,
    #: ``spinner``, ``radio-button``, ``check-box``), slider step, entry-format hint.
    control: str | None = None
    step: int | Decimal | None = None
    entry_format: str | None = None
    _by_code: Mapping[str, Option] = field(default_factory=dict, repr=False, compare=False)

    @property
    def answerable(self) -> bool:
        return self.type not in ("group", "display")

    def option(self, code: str) -> Option | None:
        return self._by_code.get(code)

    def option_for_coding(self, coding: Mapping[str, Any]) -> Option | None:
        """The option whose coding has this system and code (display is not compared)."""
        for option in self.options:
            if (option.coding.get("system") == coding.get("system")
                    and option.coding.get("code") == coding.get("code")):
                return option
        return None


@dataclass(frozen=True, eq=False)
class Form:
    """A loaded Questionnaire: its identity, its item tree and an index by linkId.

    Compared and hashed by identity: one Form per loaded Questionnaire, so per-form
    caches (the answers schema) key on it safely.
    """

    id: str
    url: str
    version: str
    title: str
    resource: Mapping[str, Any]
    top: tuple[str, ...]
    index: Mapping[str, Item]

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    @property
    def items(self) -> tuple[Item, ...]:
        """The top-level items (groups), in Questionnaire order."""
        return tuple(self.index[link_id] for link_id in self.top)

    def children(self, item: Item) -> tuple[Item, ...]:
        return tuple(self.index[link_id] for link_id in item.children)

    def item(self, link_id: str) -> Item | None:
        return self.index.get(link_id)

    @property
    def answerable(self) -> tuple[Item, ...]:
        return tuple(i for i in self.index.values() if i.answerable)

    def ancestors(self, link_id: str) -> Iterator[Item]:
        parent = self.index[link_id].parent
        while parent is not None:
            yield self.index[parent]
            parent = self.index[parent].parent


def parse(resource: Mapping[str, Any], *, source: str,
          equivalents: Mapping[tuple[str, str], tuple[str, str]]) -> Form:
    """Read a Questionnaire resource into a Form.

    ``equivalents`` maps a standard (system, code) offered as an answer option to its
    short plain-format code and plain display (from the exam-answers CodeSystem's
    ``equivalent`` property).
    """
    if resource.get("resourceType") != "Questionnaire":
        raise KnowledgeError(source, "resourceType", "expected 'Questionnaire'")
    for key in ("id", "url", "version"):
        if not isinstance(resource.get(key), str) or not resource[key]:
            raise KnowledgeError(source, key, "required for a published Questionnaire")
    index: dict[str, Item] = {}
    top = tuple(_parse_item(raw, f"item[{n}]", None, source, equivalents, index).link_id
                for n, raw in enumerate(resource.get("item") or []))
    _check_enable_when(index, source)
    return Form(id=resource["id"], url=resource["url"], version=resource["version"],
                title=resource.get("title") or resource["id"], resource=resource,
                top=top, index=MappingProxyType(index))


def _parse_item(raw: Mapping[str, Any], path: str, parent: str | None, source: str,
                equivalents: Mapping[tuple[str, str], tuple[str, str]],
                index: dict[str, Item]) -> Item:
    link_id = raw.get("linkId")
    if not isinstance(link_id, str) or not link_id:
        raise KnowledgeError(source, f"{path}.linkId", "missing")
    if link_id in index:
        raise KnowledgeError(source, f"{path}.linkId", f"duplicate linkId {link_id!r}")
    type_ = raw.get("type")
    if type_ != "group" and type_ != "display" and type_ not in ANSWER_TYPES:
        raise KnowledgeError(source, f"{path}.type",
                             f"{link_id}: unsupported item type {type_!r}")
    ext = _extensions(raw)
    index[link_id] = None  # type: ignore[assignment]  # reserve the id; filled below
    children = tuple(
        _parse_item(child, f"{path}.item[{n}]", link_id, source, equivalents, index).link_id
        for n, child in enumerate(raw.get("item") or []))
    if type_ == "group" and not children:
        raise KnowledgeError(source, path, f"{link_id}: a group needs items")
    options = tuple(_parse_option(o, f"{path}.answerOption[{n}]", link_id, source, equivalents)
                    for n, o in enumerate(raw.get("answerOption") or []))
    if type_ == "choice" and not options:
        raise KnowledgeError(source, path, f"{link_id}: a choice item needs answerOption")
    codes = [o.code for o in options]
    if any(o.exclusive for o in options) and not raw.get("repeats"):
        raise KnowledgeError(source, f"{path}.answerOption", f"{link_id}: an exclusive option "
                                                             "only makes sense on a repeating choice")
    if len(set(codes)) != len(codes):
        raise KnowledgeError(source, f"{path}.answerOption", f"{link_id}: duplicate answer codes")
    min_value = ext.get(t.EXT_MIN_VALUE, {}).get("valueInteger",
                                                  ext.get(t.EXT_MIN_VALUE, {}).get("valueDecimal"))
    max_value = ext.get(t.EXT_MAX_VALUE, {}).get("valueInteger",
                                                  ext.get(t.EXT_MAX_VALUE, {}).get("valueDecimal"))
    if min_value is not None and max_value is not None and min_value > max_value:
        raise KnowledgeError(source, path, f"{link_id}: minValue {min_value} > maxValue {max_value}")
    unit = ext.get(t.EXT_UNIT, {}).get("valueCoding")
    unit_options = tuple(e["valueCoding"]["code"] for e in raw.get("extension") or []
                         if e.get("url") == t.EXT_UNIT_OPTION)
    bounds = [_quantity(ext.get(url), f"{path}.extension", link_id, source)
              for url in (t.EXT_MIN_QUANTITY, t.EXT_MAX_QUANTITY)]
    if type_ == "quantity" and not unit_options and not unit:
        raise KnowledgeError(source, path, f"{link_id}: a quantity item needs a unit or unitOption")
    units = [*unit_options, *(b.unit for b in bounds if b is not None)]
    if type_ == "quantity" and any(u not in SECONDS for u in units):
        raise KnowledgeError(source, path, f"{link_id}: quantity units must be UCUM time "
                                           f"units ({', '.join(SECONDS)})")
    if bounds[0] is not None and bounds[1] is not None and seconds(bounds[0]) > seconds(bounds[1]):
        raise KnowledgeError(source, path, f"{link_id}: minQuantity is above maxQuantity")
    conditions = tuple(_parse_condition(c, f"{path}.enableWhen[{n}]", link_id, source)
                       for n, c in enumerate(raw.get("enableWhen") or []))
    behavior = raw.get("enableBehavior", "all")
    if len(conditions) > 1 and "enableBehavior" not in raw:
        raise KnowledgeError(source, path, f"{link_id}: several enableWhen need enableBehavior")
    item = Item(link_id=link_id, type=type_, text=raw.get("text") or link_id, parent=parent,
                children=children, repeats=bool(raw.get("repeats")),
                required=bool(raw.get("required")), options=options,
                min_value=_number(min_value), max_value=_number(max_value), unit=unit,
                unit_options=unit_options, min_quantity=bounds[0], max_quantity=bounds[1],
                enable_when=conditions, enable_behavior=behavior,
                codes=tuple(raw.get("code") or ()), control=_item_control(ext),
                step=_number(ext.get(t.EXT_SLIDER_STEP, {}).get("valueInteger")),
                entry_format=ext.get(t.EXT_ENTRY_FORMAT, {}).get("valueString"),
                _by_code={o.code: o for o in options})
    index[link_id] = item
    return item


def _extensions(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {e.get("url"): e for e in raw.get("extension") or []}


def _item_control(ext: Mapping[str, Mapping[str, Any]]) -> str | None:
    codings = ext.get(t.EXT_ITEM_CONTROL, {}).get("valueCodeableConcept", {}).get("coding") or []
    return next((c.get("code") for c in codings if c.get("system") == t.ITEM_CONTROL), None)


def _number(value: Any) -> int | Decimal | None:
    if value is None or isinstance(value, int):
        return value
    return Decimal(str(value))


def _quantity(ext: Mapping[str, Any] | None, path: str, link_id: str,
              source: str) -> Quantity | None:
    if ext is None:
        return None
    q = ext.get("valueQuantity") or {}
    if "value" not in q or "code" not in q:
        raise KnowledgeError(source, path, f"{link_id}: quantity bound needs value and code")
    return Quantity(_number(q["value"]), q["code"])  # type: ignore[arg-type]


def _parse_option(raw: Mapping[str, Any], path: str, link_id: str, source: str,
                  equivalents: Mapping[tuple[str, str], tuple[str, str]]) -> Option:
    coding = raw.get("valueCoding")
    if not isinstance(coding, Mapping) or not coding.get("code") or not coding.get("system"):
        raise KnowledgeError(source, path, f"{link_id}: answerOption needs valueCoding "
                                           "with system and code")
    exclusive = _extensions(raw).get(t.EXT_OPTION_EXCLUSIVE, {}).get("valueBoolean") is True
    if coding["system"] == t.EXAM_ANSWERS:
        return Option(coding["code"], MappingProxyType(dict(coding)), exclusive=exclusive)
    plain = equivalents.get((coding["system"], coding["code"]))
    if plain is None:
        raise KnowledgeError(source, path, f"{link_id}: option {coding['system']}|{coding['code']}"
                                           " has no plain code; add it to the exam-answers "
                                           "CodeSystem with an 'equivalent' property")
    return Option(plain[0], MappingProxyType(dict(coding)), plain[1], exclusive)


def _parse_condition(raw: Mapping[str, Any], path: str, link_id: str, source: str) -> Condition:
    operator = raw.get("operator")
    if operator not in ENABLE_OPERATORS:
        raise KnowledgeError(source, f"{path}.operator", f"{link_id}: unknown operator {operator!r}")
    answers = [k for k in raw if k.startswith("answer")]
    if not raw.get("question") or len(answers) != 1:
        raise KnowledgeError(source, path, f"{link_id}: enableWhen needs question and one answer[x]")
    value = raw[answers[0]]
    if answers[0] == "answerCoding":
        value = dict(value)  # resolved to a plain code once every item is known
    return Condition(raw["question"], operator, value)


def _check_enable_when(index: dict[str, Item], source: str) -> None:
    """Resolve enableWhen targets; coded answers become plain codes of the target question."""
    for link_id, item in list(index.items()):
        resolved = []
        for condition in item.enable_when:
            target = index.get(condition.question)
            if target is None or not target.answerable:
                raise KnowledgeError(source, link_id, f"enableWhen refers to unknown question "
                                                      f"{condition.question!r}")
            answer = condition.answer
            if isinstance(answer, dict):
                option = target.option_for_coding(answer)
                if option is None:
                    raise KnowledgeError(source, link_id, f"enableWhen answer {answer.get('code')!r}"
                                                          f" is not an option of {target.link_id}")
                answer = option.code
            resolved.append(Condition(condition.question, condition.operator, answer))
        if resolved:
            index[link_id] = replace(item, enable_when=tuple(resolved))

