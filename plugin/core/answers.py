"""Answers in, typed answers out: one marshmallow schema generated from the Form.

Both input formats meet here. The plain format (``{"slr.left.onset-angle": 40}``) goes
straight through the schema; a QuestionnaireResponse is first checked for structure and
answer types, then turned into the plain format and run through the same schema. All
problems are collected and reported together, keyed by linkId. Values are never
clamped, coerced from strings or guessed: ``"40"`` is not an integer and ``1`` is not
``true``.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

from ..errors import AnswerError
from .datetimes import parse_aware
from .layout import with_unit
from .questionnaire import Condition, Form, Item, Quantity, seconds

#: Typed answers: linkId -> its values (one unless the item repeats), in form order.
Answers = Mapping[str, tuple[Any, ...]]

_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


def load_plain(form: Form, data: Any) -> Answers:
    """Validate answers in the plain format; raise AnswerError naming every bad linkId."""
    loaded, errors = load_partial(form, data)
    if errors:
        raise AnswerError(errors)
    return loaded


def load_partial(form: Form, data: Any) -> tuple[Answers, dict[str, list[str]]]:
    """The answers that are valid, and every problem keyed by linkId.

    For work in progress (a tablet draft): a wrong value must be reported without
    discarding the rest, so the valid part can still be kept as a QuestionnaireResponse.
    An answer to a question that is not enabled is reported and left out.
    """
    if not isinstance(data, Mapping):
        return MappingProxyType({}), {"(answers)": ["Expected a JSON object of linkId: value."]}
    errors: dict[str, list[str]] = {}
    try:
        loaded = _loader(form).load(dict(data))
    except ValidationError as exc:
        errors = _flatten(exc.messages)
        loaded = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    # Attribute names are positional (marshmallow would nest dotted ones); map back.
    link_ids = [item.link_id for item in form.answerable]
    typed = {link_ids[int(attr[1:])]: _as_tuple(v) for attr, v in loaded.items()}
    disabled = set()
    for link_id in typed:
        item = form.index[link_id]
        controls = {c.question for n in (item, *form.ancestors(link_id)) for c in n.enable_when}
        if controls & errors.keys():
            disabled.add(link_id)  # depends on a wrong answer: report that one only
            continue
        if not enabled(form, typed, item):
            disabled.add(link_id)
            errors.setdefault(link_id, []).append(_disabled_message(form, item))
    ordered = {item.link_id: typed[item.link_id] for item in form.answerable
               if item.link_id in typed and item.link_id not in disabled}
    return MappingProxyType(ordered), errors


def enabled(form: Form, answers: Answers, item: Item) -> bool:
    """Whether ``item`` is enabled: its own enableWhen holds and every ancestor is enabled."""
    for node in (item, *form.ancestors(item.link_id)):
        if node.enable_when:
            results = [_holds(c, form, answers) for c in node.enable_when]
            if not (all(results) if node.enable_behavior == "all" else any(results)):
                return False
    return True


def plain_value(item: Item, value: Any) -> Any:
    """A typed value back in the plain format's JSON shape."""
    if isinstance(value, Quantity):
        return {"value": json_number(value.value), "unit": value.unit}
    if isinstance(value, Decimal):
        return json_number(value)
    return value


def json_number(value: int | Decimal) -> int | float:
    """A number JSON can carry: ints stay ints, decimals become floats (``2.5``)."""
    return value if isinstance(value, int) else (int(value) if value == value.to_integral()
                                                 and "." not in str(value) else float(value))


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def _holds(condition: Condition, form: Form, answers: Answers) -> bool:
    """R4 enableWhen: true if any answer of the question meets the condition."""
    given = answers.get(condition.question, ())
    if condition.operator == "exists":
        return bool(given) == bool(condition.answer)
    target = form.index[condition.question]
    for value in given:
        if target.type == "quantity":
            continue  # no quantity comparisons in our Questionnaires; refuse to guess
        if _compare(value, condition.operator, condition.answer):
            return True
    return False


def _compare(value: Any, operator: str, expected: Any) -> bool:
    try:
        return {"=": value == expected, "!=": value != expected}[operator]
    except KeyError:
        pass
    try:
        return {">": value > expected, "<": value < expected,
                ">=": value >= expected, "<=": value <= expected}[operator]
    except TypeError:
        return False


@lru_cache(maxsize=16)
def _loader(form: Form) -> Schema:
    """The schema instance, made once per Form and reused by every load (marshmallow
    keeps no state of a load on it). A new instance per request deep-copies every field
    with references back to the schema: about a thousand objects in reference cycles
    that only the cyclic GC frees, and its full collections were the slow tail (p99)
    of ``$extract``."""
    return _schema(form)()


@lru_cache(maxsize=16)
def _schema(form: Form) -> type[Schema]:
    """Build (once per Form) the marshmallow schema for the form's answerable items."""
    declared: dict[str, Any] = {f"q{n}": _field(item) for n, item in enumerate(form.answerable)}

    class _Base(Schema):
        class Meta:
            unknown = RAISE

    return _Base.from_dict(declared, name=f"Answers_{form.id}")


def _disabled_message(form: Form, item: Item) -> str:
    for node in (item, *form.ancestors(item.link_id)):
        if node.enable_when:
            joiner = " and " if node.enable_behavior == "all" else " or "
            return ("Answered, but this question applies only when "
                    + joiner.join(c.describe() for c in node.enable_when) + ".")
    return "Answered, but this question is not enabled."


def _field(item: Item) -> fields.Field:
    single = {
        "boolean": _Boolean, "integer": _Integer, "decimal": _Decimal, "date": _Date,
        "dateTime": _DateTime, "string": _Text, "text": _Text, "choice": _Code,
        "quantity": _QuantityField,
    }[item.type]
    if item.repeats:
        return _Repeats(single(item=item), item=item, data_key=item.link_id)
    return single(item=item, data_key=item.link_id)


class _ItemField(fields.Field):
    """A field that knows its Questionnaire item, for precise messages."""

    def __init__(self, *, item: Item, **kwargs: Any) -> None:
        super().__init__(allow_none=False, **kwargs)
        self.item = item
        self.error_messages["null"] = "Must not be null; leave the question out instead."

    def _range(self, value: int | Decimal) -> None:
        low, high = self.item.min_value, self.item.max_value
        if (low is not None and value < low) or (high is not None and value > high):
            unit = self.item.unit["code"] if self.item.unit else ""
            raise ValidationError(f"{_fmt(value)} is out of range: must be between "
                                  f"{_fmt(low)} and {with_unit(_fmt(high), unit)}.")


class _Boolean(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"Expected true or false, got {_show(value)}.")
        return value


class _Integer(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"Expected a whole number, got {_show(value)}.")
        self._range(value)
        return value


class _Decimal(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValidationError(f"Expected a number, got {_show(value)}.")
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValidationError("Expected a finite number.")
        self._range(number)
        return number


class _Date(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValidationError(f"Expected a date YYYY-MM-DD, got {_show(value)}.")
        if len(value) == 10:
            try:
                dt.date.fromisoformat(value)
            except ValueError as exc:
                raise ValidationError(f"{value} is not a calendar date.") from exc
        return value


class _DateTime(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"Expected a date-time, got {_show(value)}.")
        try:
            parse_aware(value)
        except ValueError as exc:
            raise ValidationError(f"{exc}.") from exc
        return value


class _Text(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"Expected non-empty text, got {_show(value)}.")
        return value


class _Code(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or self.item.option(value) is None:
            allowed = ", ".join(o.code for o in self.item.options)
            raise ValidationError(f"{_show(value)} is not an answer option; expected one "
                                  f"of: {allowed}.")
        return value


class _QuantityField(_ItemField):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Quantity:
        if not isinstance(value, Mapping) or set(value) != {"value", "unit"}:
            raise ValidationError('Expected {"value": number, "unit": code}, got '
                                  f"{_show(value)}.")
        number, unit = value["value"], value["unit"]
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValidationError(f"Expected a number for value, got {_show(number)}.")
        if isinstance(number, float) and not math.isfinite(number):
            raise ValidationError(f"Expected a finite number for value, got {number}.")
        units = self.item.unit_options or ((self.item.unit["code"],) if self.item.unit else ())
        if unit not in units:
            raise ValidationError(f"Unit {_show(unit)} is not allowed; expected one of: "
                                  f"{', '.join(units)}.")
        quantity = Quantity(number if isinstance(number, int) else Decimal(str(number)), unit)
        low, high = self.item.min_quantity, self.item.max_quantity
        if ((low is not None and seconds(quantity) < seconds(low))
                or (high is not None and seconds(quantity) > seconds(high))):
            raise ValidationError(f"{with_unit(_fmt(quantity.value), unit)} is out of range: "
                                  f"must be between {_fmt(low.value) if low else '-'} and "
                                  + with_unit(_fmt(high.value) if high else '-',
                                              (high or low).unit) + ".")  # type: ignore[union-attr]
        return quantity


class _Repeats(_ItemField):
    """A list of distinct values for a repeating item (at least one)."""

    def __init__(self, inner: _ItemField, *, item: Item, **kwargs: Any) -> None:
        super().__init__(item=item, **kwargs)
        self.inner = inner

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise ValidationError(f"Expected a non-empty list, got {_show(value)}.")
        result, problems = [], []
        for n, element in enumerate(value):
            try:
                result.append(self.inner.deserialize(element))
            except ValidationError as exc:
                problems.append(f"[{n}] " + " ".join(_flatten_list(exc.messages)))
        if problems:
            raise ValidationError(problems)
        if len(set(map(repr, result))) != len(result):
            raise ValidationError("The same answer is given more than once.")
        alone = [v for v in result if isinstance(v, str) and self.item.option(v) is not None
                 and self.item.option(v).exclusive]  # type: ignore[union-attr]
        if alone and len(result) > 1:
            # keyed by linkId (the API names it first; the tablet shows it by the field)
            raise ValidationError(f'"{self.item.option(alone[0]).display}" excludes '  # type: ignore[union-attr]
                                  "every other answer; choose it alone or leave it out.")
        return result


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def _flatten(messages: Any) -> dict[str, list[str]]:
    """marshmallow's {field: [msgs]} (or nested) into {linkId: [msgs]}."""
    result: dict[str, list[str]] = {}
    for key, value in (messages.items() if isinstance(messages, dict) else []):
        if key == "_schema":
            key = "(answers)"
        result.setdefault(str(key), []).extend(_flatten_list(value))
    for link_id, msgs in result.items():
        result[link_id] = [("Unknown linkId: not a question of this Questionnaire."
                            if m == "Unknown field." else m) for m in msgs]
    return result


def _flatten_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [m for v in value.values() for m in _flatten_list(v)]
    return [m for v in value for m in _flatten_list(v)]
