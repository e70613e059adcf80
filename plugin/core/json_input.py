"""The one strict reader of JSON that comes from outside (request bodies, CLI files).

Python's ``json`` accepts more than a downstream reader survives: ``NaN`` and
``Infinity`` (not JSON at all), ``1e999`` (becomes infinity), lone UTF-16 surrogates
(``"\\ud800"``: no UTF-8 encoder, so no database driver or model, can carry them), NUL
characters (PostgreSQL text refuses them) and nesting deep enough to exhaust a recursive
reader. Every edge reads outside JSON through ``parse`` (or, for JSON parsed elsewhere,
``check``), so the core only ever sees finite numbers and text any encoder can write;
each refusal names where in the document it was found. Pure: no Flask, no I/O.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from ..errors import InputError

#: Deepest JSON nesting accepted. A complete exam as a Parameters-wrapped response is
#: ~20 levels; far deeper input is refused before a recursive reader meets it.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"nests JSON deeper than {MAX_JSON_DEPTH} levels; no exam record is that deep"
#: Characters no text we accept may hold: NUL (PostgreSQL refuses it in text) and lone
#: surrogates (no UTF-8 encoding exists for them).
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: What a key may not show of itself in a message (one line, any encoder).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def parse(text: str | bytes, what: str = "The request body") -> Any:
    """``text`` as JSON, checked by ``check``; an InputError (code ``structure`` or
    ``invalid``) names the problem and where it is. ``what`` starts each message."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{what} is not UTF-8 text.", code="structure") from None
    if text.startswith("\ufeff"):  # a byte order mark: RFC 8259 lets a reader ignore it
        text = text[1:]
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                          parse_int=_whole)
    except RecursionError:  # deeper than Python's parser goes
        raise InputError(f"{what} {TOO_DEEP}.", code="structure") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}).", code="structure") from None
    except _Refused as exc:
        raise InputError(f"{what} holds {exc.args[0]}; JSON numbers must be finite and "
                         "of sensible size.", code="structure") from None
    check(data, what)
    return data


def check(data: Any, what: str = "The input", *, numbers: bool = True) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH, NUL characters and lone surrogates
    anywhere in ``data`` (keys included) and, with ``numbers``, non-finite numbers (else
    left to a schema that names the question). Iterative: safe on input that would
    exhaust a recursive reader."""
    stack: list[tuple[Any, str, int]] = [(data, _root(data), 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InputError(f"{what} {TOO_DEEP}.", code="structure")
            if isinstance(value, dict):
                for key, child in value.items():
                    where = _member(path, key)
                    _text(key, where, what, "a key")
                    stack.append((child, where, depth + 1))
            else:
                stack.extend((child, f"{path}[{n}]", depth + 1)
                             for n, child in enumerate(value))
        elif isinstance(value, str):
            _text(value, path, what, "text")
        elif numbers and isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{what} holds a number that is not finite at {path}.",
                             expression=path, code="structure")


def text_problem(value: str) -> str | None:
    """Why ``value`` (a query parameter, a header, a form field) cannot be accepted as
    text, or None: a NUL or a lone surrogate."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    return "holds a NUL character" if found.group() == "\x00" \
        else "holds a lone UTF-16 surrogate (not Unicode text)"


def nests_deeper(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` has containers nested more than ``limit`` deep (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False


def _text(value: str, path: str, what: str, kind: str) -> None:
    problem = text_problem(value)
    if problem:
        raise InputError(f"{what}: the {kind} at {path} {problem}.", expression=path)


def _root(data: Any) -> str:
    name = data.get("resourceType") if isinstance(data, dict) else None
    return name if isinstance(name, str) and _NAME.fullmatch(name) else "$"


def _member(path: str, key: str) -> str:
    if _NAME.fullmatch(key):
        return f"{path}.{key}"
    quoted = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{printable(quoted)}']"


def printable(text: str) -> str:
    """``text`` safe to quote in a one-line message: control characters, NULs and lone
    surrogates shown as ``?``."""
    return _UNPRINTABLE.sub("?", text)


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text[:20]} (not finite as a number)")
    return value


#: Digits in the largest integer accepted: FHIR's integer64 needs 19; more is no quantity.
MAX_INT_DIGITS = 30


def _whole(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)
