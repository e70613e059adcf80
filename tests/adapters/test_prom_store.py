"""A visit's outcome questionnaires in the store, on SQLite and on a real PostgreSQL:
stored in the order added, saved only on the version last seen, locked with the
signed exam, removable only while unfinished, each write audited with it."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from plugin.adapters import prom_store, sessions, users
from plugin.adapters.tables import audit_events
from plugin.errors import ConflictError, LockedError, NotFoundError

from .test_store import ANA, QUESTIONNAIRE, draft, sign

LEFS = "http://posterior-thigh-exam.org/fhir/Questionnaire/lefs|1.0.0"
QR = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "questionnaire": LEFS}


@pytest.fixture()
def exam(store):
    ana = store.add_patient(ANA)
    return store.create_exam(ana.id, QUESTIONNAIRE, answers={}, draft=draft({}))


def _event(record):
    return [{"resourceType": "AuditEvent", "id": "00000000-0000-4000-8000-%012d" % record.version,
             "recorded": "2026-12-06T09:00:00Z", "action": "U",
             "type": {"code": "rest"}, "outcome": "0", "agent": [], "source": {},
             "entity": []}]


def _audits(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_events)).scalar_one()


def test_proms_are_listed_in_the_order_added_and_read_back(store, exam) -> None:
    first = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    second = prom_store.add(store, exam.id, LEFS, answers={"lefs-item-1": "lefs-4"},
                            response=QR, added_by="ann")
    assert [p.id for p in prom_store.for_exam(store, exam.id)] == [first.id, second.id]
    read = prom_store.get(store, second.id)
    assert read == second and read.state == "in-progress" and read.version == 1
    assert read.patient_id == exam.patient_id and read.answers == {"lefs-item-1": "lefs-4"}
    with pytest.raises(NotFoundError):
        prom_store.get(store, "not-an-id")


def test_a_save_on_a_stale_version_is_refused_and_changes_nothing(store, exam) -> None:
    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    saved = prom_store.save(store, prom.id, expected_version=1, answers={"a": 1}, response=QR)
    assert saved.version == 2
    with pytest.raises(ConflictError) as refused:
        prom_store.save(store, prom.id, expected_version=1, answers={"a": 2}, response=QR)
    assert refused.value.current == 2
    assert prom_store.get(store, prom.id).answers == {"a": 1}


def test_a_finished_prom_cannot_be_changed_or_removed(store, exam) -> None:
    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    done = prom_store.save(store, prom.id, expected_version=1, answers={}, response=QR,
                           complete=True)
    assert done.finished
    with pytest.raises(ConflictError):
        prom_store.save(store, prom.id, expected_version=2, answers={"a": 1}, response=QR)
    with pytest.raises(ConflictError):
        prom_store.remove(store, prom.id, expected_version=2)
    assert prom_store.get(store, prom.id).finished


def test_an_unfinished_prom_is_removed(store, exam) -> None:
    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    with pytest.raises(ConflictError):
        prom_store.remove(store, prom.id, expected_version=7)
    prom_store.remove(store, prom.id, expected_version=1)
    assert prom_store.for_exam(store, exam.id) == []


def test_a_signed_exams_proms_are_locked(store, exam) -> None:
    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    sign(store, exam, {})
    with pytest.raises(LockedError):
        prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    with pytest.raises(LockedError):
        prom_store.save(store, prom.id, expected_version=1, answers={"a": 1}, response=QR)
    with pytest.raises(LockedError):
        prom_store.remove(store, prom.id, expected_version=1)
    assert prom_store.get(store, prom.id).answers == {}


def test_a_write_and_its_audit_commit_together(store, exam) -> None:
    before = _audits(store)
    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann",
                          audit=_event)
    assert _audits(store) == before + 1

    def broken(record):
        raise RuntimeError("the trail is down")
    with pytest.raises(RuntimeError):
        prom_store.save(store, prom.id, expected_version=1, answers={"a": 1}, response=QR,
                        audit=broken)
    assert prom_store.get(store, prom.id).version == 1  # rolled back with its audit


def test_patient_mode_is_kept_with_the_session(store, exam) -> None:
    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    now = dt.datetime.now(dt.timezone.utc)
    account = users.add(store, "ann", display_name="Dr Ann Lee", role="clinician",
                        password="a long test passphrase for the ward", now=now)
    token = sessions.begin(store, account.id, now=now)
    live = dict(now=now, idle=dt.timedelta(minutes=30), lifetime=dt.timedelta(hours=12))
    assert sessions.current(store, token, **live).patient_prom_id is None
    prom_store.patient_mode(store, sessions.digest(token), prom.id)
    assert sessions.current(store, token, **live).patient_prom_id == prom.id
    prom_store.patient_mode(store, sessions.digest(token), None)
    assert sessions.current(store, token, **live).patient_prom_id is None


def test_a_save_racing_the_signature_waits_for_it_and_is_refused(store, exam) -> None:
    """The signature's transaction holds the exam's row; a PROM save that comes in
    meanwhile waits for it and then finds the exam signed: it can never change a PROM
    the signature did not see."""
    import threading
    import time

    from sqlalchemy import update

    from plugin.adapters import engine as engine_mod
    from plugin.adapters.tables import exams

    prom = prom_store.add(store, exam.id, LEFS, answers={}, response=QR, added_by="ann")
    locked, outcome = threading.Event(), {}

    def signature() -> None:
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(update(exams).where(exams.c.id == exam.id)
                         .values(state="signed", version=exams.c.version + 1))
            locked.set()
            time.sleep(0.6)

    def save() -> None:
        try:
            prom_store.save(store, prom.id, expected_version=1, answers={"a": 1}, response=QR)
            outcome["result"] = "saved"
        except LockedError:
            outcome["result"] = "locked"

    signing = threading.Thread(target=signature)
    signing.start()
    assert locked.wait(10)
    started = time.monotonic()
    save()
    signing.join()
    assert outcome["result"] == "locked"
    assert time.monotonic() - started > 0.3  # it waited for the signature
    assert prom_store.get(store, prom.id).answers == {}
