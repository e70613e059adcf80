"""``python -m plugin audit export --since DATE``: the audit trail as NDJSON on stdout."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from plugin.adapters import audit
from plugin.adapters.store import Store
from plugin.core import audit_events as ae
from tests.support.cli import run

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
ANN = ae.Actor("alee", "Dr Ann Lee", "u-1", "clinician")


@pytest.fixture()
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'exam.sqlite3'}"
    store = Store(url)
    store.upgrade()
    events = [ae.rest("read", actor=ANN, address="10.0.0.1",
                      recorded=T0 + dt.timedelta(days=day), resource="Patient/p-1",
                      patient_id="p-1") for day in range(3)]
    for event in events:
        audit.write(store.engine, event)
    store.dispose()
    return url, events


@pytest.mark.parametrize(("since", "expected"), [
    ((), slice(0, 3)), (("--since", "2026-12-02"), slice(1, 3)),
    (("--since", "2026-12-03T09:00:00+01:00"), slice(2, 3)),
    (("--since", "2026-12-04"), slice(0, 0)),
])
def test_export_writes_one_event_per_line_oldest_first(database, since, expected) -> None:
    url, events = database
    result = run("audit", "export", *since, env={"PLUGIN_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == events[expected]
    assert result.stderr == f"{len(events[expected])} audit events\n"


@pytest.mark.parametrize("value", ["yesterday", "2026-12-02T08:00:00", "2026-13-01"])
def test_a_bad_date_is_exit_2(database, value) -> None:
    result = run("audit", "export", "--since", value,
                 env={"PLUGIN_DATABASE_URL": database[0]})
    assert (result.returncode, result.stdout) == (2, "")
    assert f"--since: {value!r} is not an ISO date" in result.stderr


def test_an_unusable_database_is_exit_4() -> None:
    result = run("audit", "export", env={"PLUGIN_DATABASE_URL": "not a url"})
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr.startswith("error: DATABASE_URL is not a database URL")
