"""What an EHR's refusal is about: the way the record was sent, or the record itself.

``auto`` (``ehr.deliver``) tries another way of sending when a refusal is about the
request's *shape* (a transaction too large, a query or a type the server does not take
in that form) and gives up only when it is about the *content* (the record is invalid:
another way would meet the same refusal). The HTTP status and the OperationOutcome's
``issue.code`` decide; some servers report a shape refusal with a content code
(Medplum answers a conditional transaction over its entry limit with ``invalid``,
"Transaction requires strict isolation but has too many entries"), so a few words of
the diagnostics count as shape too. A refusal that says neither is ``unknown``: treated
as shape once, then as final (``ehr.deliver``).
"""
from __future__ import annotations

import re

from .ehr_http import Result

__all__ = ["CONTENT", "SHAPE", "TRANSIENT", "UNKNOWN", "entry_limit", "kind", "too_large"]

TRANSIENT, SHAPE, CONTENT, UNKNOWN = "transient", "shape", "content", "unknown"

#: Issue codes about the request's form: another way of sending may succeed.
SHAPE_CODES = frozenset({"too-costly", "not-supported", "processing", "business-rule",
                         "too-long", "throttled"})
#: Issue codes about the record itself: every way of sending would be refused.
CONTENT_CODES = frozenset({"invalid", "structure", "required", "value", "invariant",
                           "code-invalid", "extension", "not-found"})
#: Statuses that refuse the request's form whatever the body says (405 not allowed,
#: 413 too large, 414 URI too long, 501 not implemented).
SHAPE_STATUSES = frozenset({405, 413, 414, 501})
#: Diagnostics that name the request's form (lower case).
SHAPE_WORDS = ("too many entries", "too large", "too many resources", "chain",
               "unknown search parameter", "unsupported search parameter",
               "not supported in a transaction", "not allowed in a transaction",
               "does not support transactions")
_LIMIT = re.compile(r"(?:at most|maximum(?: of)?|max(?:imum)?|limit(?: of| is)?)\s*:?\s*"
                    r"(\d{1,5})", re.IGNORECASE)


def kind(result: Result) -> str:
    """``transient`` (retry later), ``shape``, ``content`` or ``unknown``."""
    if result.retryable or result.status is None or result.status == 401:
        return TRANSIENT
    if result.status in SHAPE_STATUSES or _words(result):
        return SHAPE
    codes = set(result.codes)
    if codes & SHAPE_CODES:
        return SHAPE
    if codes & CONTENT_CODES:
        return CONTENT
    return UNKNOWN


def too_large(result: Result) -> bool:
    """Whether the refusal says the transaction had too many entries."""
    text = (result.error or "").lower()
    return result.status == 413 or "too-costly" in result.codes or any(
        w in text for w in ("too many entries", "too large", "too many resources"))


def entry_limit(result: Result, entries: int) -> int:
    """The entry limit a too-large refusal implies: the number it names, else half of
    what was refused (at least 1)."""
    named = _LIMIT.search(result.error or "")
    if named and 0 < int(named.group(1)) < entries:
        return int(named.group(1))
    return max(1, entries // 2)


def _words(result: Result) -> bool:
    text = (result.error or "").lower()
    return any(w in text for w in SHAPE_WORDS)
