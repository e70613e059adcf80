"""The strict JSON reader every edge uses (core.json_input): what it refuses, and where
it says the problem is."""
from __future__ import annotations

import pytest

from plugin.core import json_input
from plugin.errors import InputError


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("text, message, expression", [
    (b'{"a": NaN}', "NaN", None),
    (b'{"a": -Infinity}', "-Infinity", None),
    (b'{"a": 1e999}', "not finite", None),
    (b'{"a": ' + b"9" * 31 + b"}", "an integer of 31 digits", None),
    (b'{"a": "\\ud800"}', "lone UTF-16 surrogate", "$.a"),
    (b'{"item": [{"text": "x\\udfffy"}]}', "lone UTF-16 surrogate", "$.item[0].text"),
    (b'{"resourceType": "Patient", "name": [{"given": ["a\\u0000"]}]}', "NUL",
     "Patient.name[0].given[0]"),
    (b'{"\\ud800": 1}', "key", "$['?']"),
    (b'{"a b": "\\u0000"}', "NUL", "$['a b']"),
    (b"[" * 65 + b"]" * 65, "deeper than 64 levels", None),
    (b"[" * 100_000 + b"]" * 100_000, "deeper than 64 levels", None),
    (b"\xff\xfe{}", "not UTF-8", None),
    (b'{"a": }', "not valid JSON (line 1, column 7", None),
])
def test_refusals_say_what_and_where(text, message, expression) -> None:
    with pytest.raises(InputError) as caught:
        json_input.parse(text, "The body")
    assert caught.value.message.startswith("The body") and message in caught.value.message
    assert caught.value.issues[0][0] == expression
    assert caught.value.status == 400


@pytest.mark.parametrize("text, value", [
    (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a byte order mark is ignored (RFC 8259)
    (b'{"a": 1e308, "b": -0.0, "c": "\\u00e9\\ud83d\\ude00"}',
     {"a": 1e308, "b": -0.0, "c": "\u00e9\U0001F600"}),  # a surrogate *pair* is text
    (b"[" * 64 + b"]" * 64, _nested(64)),
    (b'{"n": ' + b"9" * 30 + b"}", {"n": int("9" * 30)}),
])
def test_what_is_accepted(text, value) -> None:
    assert json_input.parse(text) == value


def test_check_finds_the_same_in_parsed_data_and_can_leave_numbers_to_a_schema() -> None:
    with pytest.raises(InputError, match="not finite at \\$.a"):
        json_input.check({"a": float("nan")})
    json_input.check({"a": float("nan")}, numbers=False)
    with pytest.raises(InputError, match="NUL"):
        json_input.check({"a": ["\x00"]}, numbers=False)


@pytest.mark.parametrize("text, problem", [
    ("plain", None), ("é 😀", None), ("a\x00", "NUL"), ("\ud800", "surrogate")])
def test_text_problem(text, problem) -> None:
    found = json_input.text_problem(text)
    assert (found is None) if problem is None else problem in found
