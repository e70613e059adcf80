"""Hostile variants of valid inputs, for the fuzz tests (tests/fuzz) and ``scripts/fuzz``.

``mutants(seed)`` draws a valid JSON document's hostile copies: one to three places in
it (any key or value, at any depth) replaced with what an attacker or a buggy integrator
sends - wrong JSON types, null, huge and non-finite numbers, deep nesting, lone
surrogates, NULs, control characters, long strings - or removed, or wrapped in a list.
``encode`` writes a mutant as a client's JSON library would (``NaN``, ``\\ud800``).

How many cases each test runs: ``FUZZ`` (settings). In the suite it is small and
derandomized (the same cases every run, about a minute in all); ``scripts/fuzz`` sets
``PLUGIN_FUZZ_EXAMPLES`` for thousands of fresh random cases.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_LONG_RUN = "PLUGIN_FUZZ_EXAMPLES" in os.environ
#: The settings of every fuzz test: fixed cases in the suite, fresh ones in scripts/fuzz.
FUZZ = settings(
    max_examples=int(os.environ.get("PLUGIN_FUZZ_EXAMPLES") or 40),
    derandomize=not _LONG_RUN, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])


def _deep(levels: int, inner: Any = 1) -> Any:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


#: What replaces a value: the hostile inputs of issue 13.
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([None, True, False, 0, -1, "", "40", "true", [], {}, [None], {"": None},
                     2 ** 31, -(2 ** 63), 10 ** 25, 1e308, -1e-308, 0.1,
                     float("nan"), float("inf"), float("-inf"),
                     "\ud800", "a\udfffb", "\x00", "a\x00b", "\r\nforged: line", "\x1b[31m",
                     "x" * 70_000, "9" * 25, "1e999", "<script>alert(1)</script>",
                     "Patient/../../x", _deep(70), _deep(30, {"a": "\ud800"})]),
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.none() | st.booleans() | st.text(max_size=5), max_size=3),
)


def _places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index path in ``doc`` (the root included)."""
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _places(value, (*path, key))
    elif isinstance(doc, list):
        for n, value in enumerate(doc):
            found += _places(value, (*path, n))
    return found


def _apply(doc: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    if not path:
        return value if how == "replace" else [doc] if how == "wrap" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "rename" and isinstance(parent, dict):
        parent[value if isinstance(value, str) else str(value)] = parent.pop(last)
    elif how == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    else:
        parent[last] = value
    return doc


@st.composite
def mutants(draw: Any, seed: Any) -> Any:
    """A hostile copy of ``seed``: one to three places changed."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        places = _places(doc)
        path = draw(st.sampled_from(places))
        how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "wrap",
                                    "rename", "duplicate"]))
        if how == "delete" and not path:
            how = "replace"
        # a copy: a later change must never reach HOSTILE's shared constants
        doc = _apply(doc, path, how, copy.deepcopy(draw(HOSTILE)))
    return doc


def encode(doc: Any) -> bytes:
    """``doc`` as a lax client writes it: NaN/Infinity literals, escaped surrogates."""
    return json.dumps(doc, allow_nan=True).encode("ascii")
