"""Times as the clinic reads them (``TIME_ZONE``): the zone's own offset and name on
the day, summer time included; an unknown zone refused with a message."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.core import datetimes

SUMMER = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.timezone.utc)
WINTER = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("zone, moment, shown", [
    ("UTC", SUMMER, "2026-07-01 10:00 UTC"),
    ("Europe/London", SUMMER, "2026-07-01 11:00 BST"),
    ("Europe/London", WINTER, "2026-12-01 10:00 GMT"),
    ("America/New_York", WINTER, "2026-12-01 05:00 EST"),
    ("Europe/London", SUMMER.replace(tzinfo=None), "2026-07-01 11:00 BST"),  # stored UTC
])
def test_a_moment_in_the_clinic_zone(zone, moment, shown) -> None:
    assert datetimes.local(moment, zone) == shown


def test_the_date_is_the_clinic_date() -> None:
    late = dt.datetime(2026, 7, 1, 23, 30, tzinfo=dt.timezone.utc)
    assert datetimes.local_date(late, "UTC") == "2026-07-01"
    assert datetimes.local_date(late, "Europe/London") == "2026-07-02"


@pytest.mark.parametrize("name", ["Europe/Lodnon", "", " ", "+01:00", "../../etc/passwd", None])
def test_an_unknown_zone_is_refused_by_name(name) -> None:
    with pytest.raises(ValueError, match="TIME_ZONE"):
        datetimes.zone(name)  # type: ignore[arg-type]
