"""The one import point for fhir.resources, and so the one place the FHIR release is chosen.

We speak R4 (4.0.1) on the wire and use the ``R4B`` models, which are wire-identical for
every resource this product emits (shared/fhir.md §1.2). Building every resource through
pydantic costs ~1 ms each, so the pipeline builds plain dicts and this module checks them
where a check is worth its cost: at start-up for definitions, for every resource that
comes from outside, and in the test suite.

The models coerce (``"40"`` becomes 40, ``"true"`` becomes true, ``null`` is "absent"),
and pydantic's strict mode does not reach their own validators, so ``validate`` first
checks the raw JSON types against the models' own field table (``_fields``): strings
where FHIR has a string-like primitive, true/false for boolean, numbers for integer and
decimal, objects for complex types, arrays exactly where an element repeats, and no
nulls. What the product receives is then exactly what it reads and passes on.
"""
from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.types import FhirBase
from pydantic import ValidationError

#: What this product says in CapabilityStatement.fhirVersion and in its docs.
FHIR_VERSION = "4.0.1"
#: The JSON type each kind of element takes, in words for messages.
_EXPECTED = {"string": "a JSON string", "boolean": "true or false",
             "integer": "a whole JSON number", "decimal": "a JSON number",
             "object": "a JSON object", "resource": "a resource (a JSON object)"}


def validate(resource: dict[str, Any]) -> list[str]:
    """Return the structural problems in ``resource`` (empty: valid), each
    ``"<FHIRPath below the resource>: <message>"``: wrong raw JSON types (nothing
    coerced), then what else fhir.resources finds."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return ["resourceType: missing or not a string"]
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [f"resourceType: unknown resource type {resource_type!r}"]
    problems = _raw_type_problems(resource, model)
    wrong = tuple(p.partition(": ")[0] for p in problems)
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        for err in exc.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                            for p in err["loc"]).lstrip(".")
            if not any(where == w or where.startswith(w + ".") for w in wrong):
                problems.append(f"{where}: {err['msg']}")  # each problem once
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # the models' own validators can trip over what the raw check already refused
        # (a contained resourceType null); else say so rather than crash
        if not problems:
            problems.append(f"resourceType: cannot be read as FHIR R4 ({type(exc).__name__})")
    return problems


def _raw_type_problems(resource: dict[str, Any], model: Any) -> list[str]:
    """Every element of ``resource`` whose JSON type is not the one its definition
    demands (iterative: depth is bounded by the caller's JSON reader anyway)."""
    problems: list[str] = []
    stack: list[tuple[dict[str, Any], Any, str]] = [(resource, model, "")]
    while stack:
        node, node_model, path = stack.pop()
        fields = _fields(node_model)
        for key, value in node.items():
            spec = fields.get(key)
            if spec is None:
                continue  # unknown names are the model's to report
            many, kind, target = spec
            where = f"{path}.{key}" if path else key  # FHIRPath: item[0].answer[1]
            if value is None:
                problems.append(f"{where}: must not be null; leave the element out")
                continue
            if kind == "extension":
                continue  # ``_name``: the model checks it (nulls are legal inside)
            if many != isinstance(value, list):
                problems.append(f"{where}: must be " + (
                    "a JSON array (the element repeats)" if many
                    else "a single value, not an array"))
                continue
            elements = list(enumerate(value)) if many else [(None, value)]
            for n, element in elements:
                at = where if n is None else f"{where}[{n}]"
                if element is None and f"_{key}" in node:
                    continue  # a primitive array's gap, filled by its extension
                child = _typed(element, kind, target, at, problems)
                if child is not None:
                    stack.append(child)
    return problems


def _typed(value: Any, kind: str, target: Any, at: str,
           problems: list[str]) -> tuple[dict[str, Any], Any, str] | None:
    """Check one value's JSON type; a JSON object to descend into, with its model."""
    ok = {"string": isinstance(value, str),
          "boolean": isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "decimal": isinstance(value, (int, float)) and not isinstance(value, bool),
          }.get(kind, isinstance(value, dict))
    if not ok:
        problems.append(f"{at}: must be {_EXPECTED[kind]}, not {_json_type(value)}")
        return None
    if kind == "object":
        return value, target, at
    if kind == "resource":
        name = value.get("resourceType")
        try:
            return value, get_fhir_model_class(name), at
        except (KeyError, ValueError, TypeError):
            problems.append(f"{at}.resourceType: unknown resource type {name!r}")
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "a string", int: "a number", float: "a number", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


@lru_cache(maxsize=None)
def _fields(model: Any) -> dict[str, tuple[bool, str, Any]]:
    """A model's JSON names -> (repeats, kind, model of a complex type), from the
    annotations fhir.resources generates from the FHIR definitions."""
    table: dict[str, tuple[bool, str, Any]] = {}
    for attribute, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        name = field.alias or attribute
        if name.startswith("_"):
            table[name] = (False, "extension", None)
            continue
        if not extra.get("element_property"):
            continue
        many, base = _unwrap(field.annotation)
        kind, target = _kind(base)
        if kind is not None:
            table[name] = (many, kind, target)
    return table


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """(repeats, the element's own type) of ``Optional[List[X]]``, ``X | None``, ..."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return many, None  # str | list[str] (fhir_comments): not an element
            annotation = args[0]
        elif origin in (list, typing.List):
            many, annotation = True, typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return many, annotation


def _kind(base: Any) -> tuple[str | None, Any]:
    if base is bool:
        return "boolean", None
    if base is int:
        return "integer", None
    if base is decimal.Decimal:
        return "decimal", None
    if base in (str, dt.date, dt.datetime, dt.time):
        return "string", None
    if isinstance(base, type) and issubclass(base, FhirBase):
        if base.__name__ == "ResourceType":
            return "resource", None
        if base.__name__ == "FHIRPrimitiveExtensionType":
            return "extension", None
        return "object", base.get_model_klass()
    return None, None
