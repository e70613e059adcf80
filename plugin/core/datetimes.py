"""FHIR date-times as the pipeline needs them: with a zone, or not an instant at all."""
from __future__ import annotations

import datetime as dt


def parse_aware(value: str) -> dt.datetime:
    """Parse an ISO 8601 date-time that carries a timezone offset.

    Raises ValueError with a message fit for a person: a time without a zone is
    ambiguous in a clinical record, so it is refused rather than assumed to be UTC.
    """
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} needs a timezone offset, e.g. 2026-11-21T10:00:00+01:00")
    return parsed


def is_instant(value: str) -> bool:
    """Whether ``value`` can fill a FHIR ``instant`` (full date-time with a zone)."""
    try:
        parse_aware(value)
    except ValueError:
        return False
    return "T" in value
