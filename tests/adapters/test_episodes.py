"""Episodes in the store (K3), on SQLite and on a real PostgreSQL: an initial exam starts
its own episode, a follow-up joins one of the same patient's, the episode's exams come
oldest first, and migration 0013 back-fills every existing exam as its own episode."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from alembic import command
from sqlalchemy import JSON, DateTime, Uuid, column, insert, inspect, table

from plugin.adapters import migrations
from plugin.adapters.store import Store
from plugin.errors import InputError, NotFoundError
from tests.adapters.test_store import ANA, QUESTIONNAIRE, draft, patient

FOLLOW_UP = ("http://posterior-thigh-exam.org/fhir/Questionnaire/"
             "posterior-thigh-follow-up|1.0.0")


def _begin(store: Store, patient_id: str, questionnaire: str = QUESTIONNAIRE,
           episode_id: str | None = None):
    answers = {"pain.current": 3}
    return store.create_exam(patient_id, questionnaire, answers=answers, draft=draft(answers),
                             episode_id=episode_id)


def test_an_initial_exam_is_its_own_episode(store) -> None:
    ana = store.add_patient(ANA)
    first = _begin(store, ana.id)
    assert first.episode_id == first.id
    assert store.exam(first.id).episode_id == first.id
    assert store.episode_exams(first.id) == [store.exam(first.id)]


def test_follow_ups_join_the_episode_oldest_first(store) -> None:
    ana = store.add_patient(ANA)
    first = _begin(store, ana.id)
    other_complaint = _begin(store, ana.id)  # a new complaint: a new episode
    second = _begin(store, ana.id, FOLLOW_UP, episode_id=first.id)
    third = _begin(store, ana.id, FOLLOW_UP, episode_id=first.id)
    assert [e.id for e in store.episode_exams(first.id)] == [first.id, second.id, third.id]
    assert {e.episode_id for e in store.episode_exams(first.id)} == {first.id}
    assert [e.id for e in store.episode_exams(other_complaint.id)] == [other_complaint.id]


def test_a_follow_up_cannot_join_another_patients_episode_or_a_follow_up(store) -> None:
    ana, rui = store.add_patient(ANA), store.add_patient(patient("Costa", "Rui"))
    first = _begin(store, ana.id)
    second = _begin(store, ana.id, FOLLOW_UP, episode_id=first.id)
    for owner, episode in ((rui.id, first.id), (ana.id, second.id),
                           (ana.id, str(uuid.uuid4()))):
        with pytest.raises(InputError, match="initial exam of one of the patient's episodes"):
            _begin(store, owner, FOLLOW_UP, episode_id=episode)
    assert [e.id for e in store.episode_exams(first.id)] == [first.id, second.id]


def test_an_unknown_episode_is_not_found(store) -> None:
    with pytest.raises(NotFoundError):
        store.episode_exams(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        store.episode_exams("not-a-uuid")


def test_migration_0013_backfills_each_exam_as_its_own_episode(database_url) -> None:
    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            command.upgrade(migrations.config(conn), "0011")
        ids = [str(uuid.uuid4()) for _ in range(2)]
        patient_id = str(uuid.uuid4())
        # the tables as 0011 left them (typed: a uuid is stored as the backend keeps it)
        patients_0011 = table("patients", column("id", Uuid(as_uuid=False)),
                              column("resource", JSON()), column("search"),
                              column("created", DateTime(timezone=True)))
        exams_0011 = table("exams", *(column(c) for c in (
            "questionnaire", "state", "version", "revisions")),
            column("id", Uuid(as_uuid=False)), column("patient_id", Uuid(as_uuid=False)),
            column("answers", JSON()), column("created", DateTime(timezone=True)),
            column("updated", DateTime(timezone=True)))
        now = dt.datetime(2026, 11, 21, 10, tzinfo=dt.timezone.utc)
        with store.engine.begin() as conn:
            conn.execute(insert(patients_0011).values(
                id=patient_id, resource={"resourceType": "Patient"}, search="x", created=now))
            for exam_id in ids:
                conn.execute(insert(exams_0011).values(
                    id=exam_id, patient_id=patient_id, questionnaire=QUESTIONNAIRE,
                    state="draft", version=1, answers={}, revisions=0, created=now,
                    updated=now))
        store.upgrade()
        for exam_id in ids:
            assert store.exam(exam_id).episode_id == exam_id
            assert [e.id for e in store.episode_exams(exam_id)] == [exam_id]
        with store.engine.begin() as conn:  # and back down: the column goes
            command.downgrade(migrations.config(conn), "0011")
            columns = {c["name"] for c in inspect(conn).get_columns("exams")}
        assert "episode_id" not in columns
    finally:
        store.dispose()
