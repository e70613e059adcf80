"""The audit trail's table on SQLite and PostgreSQL: appended with the write it audits,
append-only by the database's own triggers, searched by patient, user and time, exported
as NDJSON."""
from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from sqlalchemy import exc, insert, text

from plugin.adapters import audit, engine as engine_mod
from plugin.adapters.store import Store
from plugin.adapters.tables import patients
from plugin.core import audit_events as ae

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
ANN = ae.Actor("alee", "Dr Ann Lee", "u-1", "clinician")
BOB = ae.Actor("bsmith", "Bob Smith", None, "assistant")


def _read(actor, patient, minutes, address="10.0.0.1"):
    return ae.rest("read", actor=actor, address=address, recorded=T0 + dt.timedelta(
        minutes=minutes), resource=f"QuestionnaireResponse/e-{patient}", patient_id=patient)


def _fill(engine):
    events = [_read(ANN, "p-1", 0), _read(BOB, "p-1", 10), _read(ANN, "p-2", 20),
              _read(ANN, "p-1", 60 * 24), _read(BOB, "p-2", 60 * 48)]
    for event in events:
        audit.write(engine, event)
    return events


def test_an_event_is_stored_with_its_searchable_facts(store) -> None:
    event = _read(ANN, "p-1", 0, address="2001:db8::7")
    audit.write(store.engine, event)
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT action, type, subtype, outcome, agent, address, "
                                "patient_id, resource, event FROM audit_events")).one()
    assert tuple(row[:8]) == ("R", "rest", "read", "0", "alee", "2001:db8::7", "p-1",
                              "QuestionnaireResponse/e-p-1")
    assert json.loads(row.event) == event


def test_append_commits_or_rolls_back_with_the_write_it_audits(store) -> None:
    event = _read(ANN, "p-1", 0)
    with pytest.raises(RuntimeError):
        with engine_mod.writer(store.engine).begin() as conn:
            audit.append(conn, event)
            raise RuntimeError("the use case failed after auditing")
    assert audit.search(store.engine)[0] == 0
    with engine_mod.writer(store.engine).begin() as conn:
        conn.execute(insert(patients).values(id="0" * 32, resource={}, search="",
                                             created=T0))
        audit.append(conn, event)
    assert audit.search(store.engine)[0] == 1


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET agent = 'someone-else'",
    "UPDATE audit_events SET event = '{}' WHERE patient_id = 'p-1'",
    "DELETE FROM audit_events",
    "DELETE FROM audit_events WHERE agent = 'alee'",
])
def test_the_database_refuses_to_change_or_remove_an_event(store, statement) -> None:
    _fill(store.engine)
    with pytest.raises(exc.DatabaseError, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text(statement))
    total, events = audit.search(store.engine)
    assert total == 5 and {e["agent"][0]["who"]["identifier"]["value"] for e in events} == \
        {"alee", "bsmith"}


def test_postgresql_also_refuses_truncate(postgres_server) -> None:
    """SQLite has no TRUNCATE; PostgreSQL's would bypass row triggers, so it has its own."""
    name = postgres_server.create_database()
    store = Store(postgres_server.url(name))
    try:
        store.upgrade()
        _fill(store.engine)
        with pytest.raises(exc.DatabaseError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text("TRUNCATE audit_events"))
        assert audit.search(store.engine)[0] == 5
    finally:
        store.dispose()
        postgres_server.drop_database(name)


def _patients_of(events):
    return [e["entity"][0]["what"]["reference"] for e in events]


def test_search_filters_by_patient_agent_and_time_newest_first(store) -> None:
    _fill(store.engine)
    engine = store.engine
    total, events = audit.search(engine, patients={"p-1"})
    assert total == 3 and [e["recorded"] for e in events] == [
        "2026-12-02T08:00:00.000Z", "2026-12-01T08:10:00.000Z", "2026-12-01T08:00:00.000Z"]
    assert audit.search(engine, agents={"bsmith"})[0] == 2
    assert audit.search(engine, agents={"bsmith"}, patients={"p-1"})[0] == 1
    day_one = [(T0, T0 + dt.timedelta(days=1))]
    assert audit.search(engine, recorded=[day_one])[0] == 3
    later = [(T0 + dt.timedelta(days=1), None)]
    assert _patients_of(audit.search(engine, recorded=[later])[1]) == \
        ["Patient/p-2", "Patient/p-1"]
    assert audit.search(engine, recorded=[day_one, later])[0] == 0  # AND
    assert audit.search(engine, recorded=[[*day_one, *later]])[0] == 5  # OR
    assert audit.search(engine, patients={"p-3"}) == (0, [])
    assert audit.search(engine, patients=set()) == (0, [])  # e.g. a reference to no patient


def test_search_pages(store) -> None:
    events = _fill(store.engine)
    newest_first = sorted(events, key=lambda e: e["recorded"], reverse=True)
    pages = [audit.search(store.engine, count=2, offset=at) for at in (0, 2, 4)]
    assert [total for total, _ in pages] == [5, 5, 5]
    assert [e for _, page in pages for e in page] == newest_first
    assert audit.search(store.engine, count=0) == (5, [])


def test_export_writes_ndjson_oldest_first_since_a_date(store) -> None:
    events = _fill(store.engine)
    out = io.StringIO()
    assert audit.export(store.engine, T0 + dt.timedelta(minutes=10), out) == 4
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == events[1:]
    everything = io.StringIO()
    assert audit.export(store.engine, None, everything) == 5


def test_a_failed_write_is_audit_unavailable(tmp_path) -> None:
    engine = engine_mod.create(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")
    try:
        with pytest.raises(audit.AuditUnavailable, match="could not be written"):
            audit.write(engine, _read(ANN, "p-1", 0))
    finally:
        engine.dispose()
