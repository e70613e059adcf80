"""FHIR date-times as the pipeline needs them: with a zone, or not an instant at all."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


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


def zone(name: str) -> ZoneInfo:
    """The clinic's time zone from its IANA name (``Europe/London``), or ValueError with
    a message that says what is expected. Checked once at start-up (``TIME_ZONE``), so a
    typo stops the service instead of printing every time in the wrong zone."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("TIME_ZONE must be an IANA time zone name, e.g. Europe/London or UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"TIME_ZONE {name!r} is not an IANA time zone name "
                         "(e.g. Europe/London, America/New_York, UTC)") from exc


def local(moment: dt.datetime, zone_name: str) -> str:
    """A moment as people at the clinic read it: ``2026-07-01 11:00 BST`` in the clinic's
    zone, with the zone's abbreviation so a printout is never ambiguous. One format for
    every page and document that shows a time."""
    if moment.tzinfo is None:  # the store keeps UTC; a naive value from it is UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    shown = moment.astimezone(zone(zone_name))
    return f"{shown:%Y-%m-%d %H:%M} {shown.tzname()}"


def local_day(moment: dt.datetime, zone_name: str) -> dt.date:
    """The calendar day of ``moment`` in the clinic's zone: the date a visit, a score or
    a comparison is said to be on (a signature at 23:30 local time is that day's)."""
    return dt.date.fromisoformat(local_date(moment, zone_name))


def local_date(moment: dt.datetime, zone_name: str) -> str:
    """The calendar date of ``moment`` in the clinic's zone (a handout's date)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone(zone_name)).date().isoformat()
