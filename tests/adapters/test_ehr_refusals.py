"""What a refusal is about (``ehr_refusals``, pure): the shape of the request, so ``auto``
tries another way, or the record's content, so it is final; and the entry limit a
too-large refusal implies."""
from __future__ import annotations

import pytest

from plugin.adapters import ehr_refusals as r
from plugin.adapters.ehr_http import Result


def refusal(status: int | None, *codes: str, error: str = "", retryable: bool = False):
    return Result(delivered=False, retryable=retryable, status=status, codes=codes,
                  error=error)


@pytest.mark.parametrize(("result", "kind"), [
    (refusal(500, retryable=True), r.TRANSIENT),
    (refusal(None, error="no answer within 5 s (timeout)", retryable=True), r.TRANSIENT),
    (refusal(401, "login"), r.TRANSIENT),
    (refusal(400, "too-costly"), r.SHAPE),
    (refusal(400, "not-supported"), r.SHAPE),
    (refusal(400, "processing"), r.SHAPE),
    (refusal(422, "business-rule"), r.SHAPE),
    (refusal(405), r.SHAPE),
    (refusal(413), r.SHAPE),
    # Medplum words its entry limit with a content code
    (refusal(400, "invalid", error="HTTP 400 Bad Request: Transaction requires strict "
                                   "isolation but has too many entries"), r.SHAPE),
    (refusal(400, "invalid", error="HTTP 400: Unknown search parameter: entity:x.y"),
     r.SHAPE),
    (refusal(400, "invalid"), r.CONTENT),
    (refusal(422, "required"), r.CONTENT),
    (refusal(422, "value"), r.CONTENT),
    (refusal(422, "code-invalid"), r.CONTENT),
    (refusal(400, "security"), r.UNKNOWN),
    (refusal(400), r.UNKNOWN),
])
def test_refusals_are_classified_by_status_issue_code_and_words(result, kind) -> None:
    assert r.kind(result) == kind


@pytest.mark.parametrize(("error", "entries", "limit"), [
    ("Transaction requires strict isolation but has too many entries", 96, 48),
    ("too many entries: at most 8", 96, 8),
    ("transaction too large (maximum of 20 entries)", 30, 20),
    ("too many entries", 1, 1),
    ("too many entries, limit is 50", 30, 15),  # a number no smaller: halve instead
])
def test_the_entry_limit_is_the_number_named_else_half(error, entries, limit) -> None:
    result = refusal(400, "invalid", error=error)
    assert r.too_large(result)
    assert r.entry_limit(result, entries) == limit


def test_other_refusals_say_nothing_of_size() -> None:
    assert not r.too_large(refusal(400, "not-supported", error="Provenance not supported in "
                                                               "a transaction"))
