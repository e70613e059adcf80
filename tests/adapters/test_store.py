"""The exam store on SQLite and on a real PostgreSQL: every test runs on both."""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest

from plugin.adapters.store import STATES, ExamRecord, Store
from plugin.errors import ConflictError, InputError, LockedError, NotFoundError

QUESTIONNAIRE = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam|0.1.0"
SIGNED_AT = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.timezone.utc)
ANA = {"resourceType": "Patient", "name": [{"family": "Silva", "given": ["Ana", "Maria"]}],
       "birthDate": "1986-03-14", "identifier": [{"system": "urn:mrn", "value": "MRN-0042"}]}


def patient(family: str, *given: str, mrn: str | None = None) -> dict:
    resource = {"resourceType": "Patient", "name": [{"family": family, "given": list(given)}]}
    if mrn:
        resource["identifier"] = [{"value": mrn}]
    return resource


def draft(answers: dict, status: str = "in-progress") -> dict:
    return {"resourceType": "QuestionnaireResponse", "status": status,
            "questionnaire": QUESTIONNAIRE,
            "item": [{"linkId": k, "answer": [{"valueString": str(v)}]}
                     for k, v in answers.items()]}


@pytest.fixture()
def exam(store) -> ExamRecord:
    ana = store.add_patient(ANA)
    answers = {"pain.current": 4}
    return store.create_exam(ana.id, QUESTIONNAIRE, answers=answers, draft=draft(answers))


def sign(store: Store, exam: ExamRecord, answers: dict, *, status: str = "completed",
         by: str = "Dr Ana Costa") -> ExamRecord:
    return store.sign(exam.id, expected_version=exam.version, answers=answers,
                      response=draft(answers, status),
                      provenance={"resourceType": "Provenance", "recorded": "2026-11-21"},
                      signed_by=by, signed_at=SIGNED_AT)


def test_patient_is_stored_with_a_new_id_and_read_back(store) -> None:
    added = store.add_patient(ANA)
    assert added.resource == {**ANA, "id": added.id}
    assert list(added.resource)[:2] == ["resourceType", "id"]
    assert added.created.tzinfo == dt.timezone.utc
    read = store.patient(added.id)
    assert read == added
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.id = "x"  # type: ignore[misc]


def test_patients_are_listed_by_family_then_given_name(store) -> None:
    for p in (patient("Silva", "Rui"), patient("Costa", "Ana"), patient("Silva", "Ana"),
              patient("Ólafsdóttir", "Guðrún", mrn="IS-77")):
        store.add_patient(p)
    names = [(r.resource["name"][0]["family"], r.resource["name"][0]["given"][0])
             for r in store.patients()]
    assert names == [("Costa", "Ana"), ("Silva", "Ana"), ("Silva", "Rui"),
                     ("Ólafsdóttir", "Guðrún")]
    assert len(store.patients(limit=2)) == 2


SEARCHES = [
    ("silva", ["Ana", "Rui"]),       # family, any case
    ("RU", ["Rui"]),                 # given names
    ("ÓLAFS", ["Guðrún"]),           # non-ASCII case folding on both backends
    ("is-7", ["Guðrún"]),            # identifier
    ("  costa ", ["Ana"]),           # surrounding blanks ignored
    ("%", []), ("_", []),            # LIKE wildcards are literal
    ("nobody", []),
    ("", ["Ana", "Ana", "Rui", "Guðrún"]), (None, ["Ana", "Ana", "Rui", "Guðrún"]),
]


def test_patients_search_is_a_case_insensitive_substring(store) -> None:
    for p in (patient("Silva", "Ana"), patient("Silva", "Rui"), patient("Costa", "Ana"),
              patient("Ólafsdóttir", "Guðrún", mrn="IS-77")):
        store.add_patient(p)
    for term, found in SEARCHES:
        given = [r.resource["name"][0]["given"][0] for r in store.patients(term)]
        assert given == found, term


def test_non_patient_resources_are_refused(store) -> None:
    with pytest.raises(InputError):
        store.add_patient({"resourceType": "Practitioner"})


def test_exam_is_created_as_a_version_1_draft(store, exam) -> None:
    assert (exam.state, exam.version, exam.revisions) == ("draft", 1, 0)
    assert exam.state in STATES
    assert exam.answers == {"pain.current": 4}
    assert exam.draft == draft({"pain.current": 4})
    assert exam.amend_reason is None
    assert exam.created == exam.updated and exam.created.tzinfo == dt.timezone.utc
    assert store.exam(exam.id) == exam


def test_exams_for_a_patient_newest_first(store, exam) -> None:
    second = store.create_exam(exam.patient_id, QUESTIONNAIRE, answers={}, draft=draft({}))
    other = store.add_patient(patient("Costa", "Rui"))
    assert [e.id for e in store.exams_for(exam.patient_id)] == [second.id, exam.id]
    assert store.exams_for(other.id) == []


def test_save_draft_bumps_the_version_and_stores_exactly_what_was_sent(store, exam) -> None:
    answers = {"pain.current": 6, "history.duration": {"value": 2, "unit": "wk"},
               "slr.left.sensitising": ["dorsiflexion", "neck-flexion"], "history.pop": True}
    saved = store.save_draft(exam.id, expected_version=1, answers=answers, draft=draft(answers))
    assert saved.version == 2 and saved.updated >= exam.updated
    assert saved.answers == answers and saved.draft == draft(answers)
    again = store.exam(exam.id)
    assert again == saved
    assert list(again.draft)[0] == "resourceType"


def test_a_stale_version_is_a_conflict_naming_the_current_one(store, exam) -> None:
    store.save_draft(exam.id, expected_version=1, answers={"a": 1}, draft=draft({}))
    with pytest.raises(ConflictError) as caught:
        store.save_draft(exam.id, expected_version=1, answers={"a": 2}, draft=draft({}))
    assert caught.value.current == 2
    assert store.exam(exam.id).answers == {"a": 1}  # nothing written


def test_any_version_but_the_current_one_is_a_conflict(store, exam) -> None:
    for stale in (0, -1, 2, 2**31, 2**70):
        with pytest.raises(ConflictError) as caught:
            store.save_draft(exam.id, expected_version=stale, answers={}, draft={})
        assert caught.value.current == 1
    for not_a_version in ("1", 1.0, True, None):
        with pytest.raises(InputError):
            store.save_draft(exam.id, expected_version=not_a_version, answers={}, draft={})
    assert store.exam(exam.id) == exam


def test_signing_locks_the_answers_as_revision_1(store, exam) -> None:
    signed = sign(store, exam, {"pain.current": 5})
    assert (signed.state, signed.version, signed.revisions) == ("signed", 2, 1)
    assert signed.draft is None and signed.answers == {"pain.current": 5}
    [first] = store.revisions(exam.id)
    assert (first.number, first.status, first.reason) == (1, "completed", None)
    assert first.answers == {"pain.current": 5}
    assert first.response == draft({"pain.current": 5}, "completed")
    assert first.provenance["resourceType"] == "Provenance"
    assert (first.signed_by, first.signed_at) == ("Dr Ana Costa", SIGNED_AT)
    assert store.revision(exam.id, 1) == first
    with pytest.raises(LockedError):
        store.save_draft(exam.id, expected_version=2, answers={}, draft=draft({}))
    with pytest.raises(LockedError):
        sign(store, signed, {})


def test_signing_with_a_stale_version_writes_no_revision(store, exam) -> None:
    with pytest.raises(ConflictError):
        store.sign(exam.id, expected_version=7, answers={}, response=draft({}, "completed"),
                   provenance={}, signed_by="Dr", signed_at=SIGNED_AT)
    assert store.revisions(exam.id) == [] and store.exam(exam.id) == exam


def test_signed_at_is_kept_in_utc(store, exam) -> None:
    lisbon_summer = dt.timezone(dt.timedelta(hours=1))
    store.sign(exam.id, expected_version=1, answers={}, response=draft({}, "completed"),
               provenance={}, signed_by="Dr", signed_at=SIGNED_AT.astimezone(lisbon_summer))
    assert store.revision(exam.id, 1).signed_at.tzinfo == dt.timezone.utc
    assert store.revision(exam.id, 1).signed_at == SIGNED_AT
    with pytest.raises(InputError):
        store.sign(exam.id, expected_version=2, answers={}, response=draft({}, "amended"),
                   provenance={}, signed_by="Dr", signed_at=dt.datetime(2026, 1, 1))


def test_the_first_signature_is_completed_and_later_ones_amended(store, exam) -> None:
    with pytest.raises(InputError):
        sign(store, exam, {}, status="amended")
    with pytest.raises(InputError):
        sign(store, exam, {}, status="in-progress")
    assert store.exam(exam.id) == exam  # rolled back


def test_an_amendment_keeps_the_history(store, exam) -> None:
    signed = sign(store, exam, {"pain.current": 5})
    for blank in ("", "   ", None):
        with pytest.raises(InputError) as caught:
            store.begin_amendment(exam.id, expected_version=signed.version, reason=blank,
                                  draft=draft({}))
        assert caught.value.status == 422
    amending = store.begin_amendment(exam.id, expected_version=signed.version,
                                     reason="Wrong side recorded", draft=draft({"x": 1}))
    assert (amending.state, amending.amend_reason, amending.version) == (
        "amending", "Wrong side recorded", signed.version + 1)
    assert amending.answers == {"pain.current": 5} and amending.draft == draft({"x": 1})
    with pytest.raises(ConflictError, match="already in progress"):
        store.begin_amendment(exam.id, expected_version=amending.version, reason="again",
                              draft=draft({}))
    edited = store.save_draft(exam.id, expected_version=amending.version,
                              answers={"pain.current": 3}, draft=draft({"pain.current": 3}))
    resigned = sign(store, edited, {"pain.current": 3}, status="amended", by="Dr Rui Lopes")
    assert (resigned.state, resigned.revisions, resigned.amend_reason, resigned.draft) == (
        "signed", 2, None, None)
    first, second = store.revisions(exam.id)
    assert (second.number, second.status, second.reason, second.signed_by) == (
        2, "amended", "Wrong side recorded", "Dr Rui Lopes")
    assert second.answers == {"pain.current": 3}
    assert first == store.revision(exam.id, 1)
    assert (first.status, first.answers, first.reason) == ("completed", {"pain.current": 5}, None)


def test_only_a_signed_exam_can_be_amended(store, exam) -> None:
    with pytest.raises(ConflictError, match="not signed") as caught:
        store.begin_amendment(exam.id, expected_version=1, reason="why", draft=draft({}))
    assert caught.value.current == 1


def test_cancelling_an_amendment_restores_the_signed_answers(store, exam) -> None:
    signed = sign(store, exam, {"pain.current": 5})
    amending = store.begin_amendment(exam.id, expected_version=signed.version, reason="typo",
                                     draft=draft({}))
    edited = store.save_draft(exam.id, expected_version=amending.version,
                              answers={"pain.current": 9}, draft=draft({"pain.current": 9}))
    cancelled = store.cancel_amendment(exam.id, expected_version=edited.version)
    assert (cancelled.state, cancelled.answers, cancelled.draft, cancelled.amend_reason) == (
        "signed", {"pain.current": 5}, None, None)
    assert cancelled.version == edited.version + 1 and cancelled.revisions == 1
    assert len(store.revisions(exam.id)) == 1
    with pytest.raises(ConflictError, match="no amendment"):
        store.cancel_amendment(exam.id, expected_version=cancelled.version)


UNKNOWN = ["7c3f1b2e-2f0e-4a8b-9d5e-1a2b3c4d5e6f", "not-a-uuid", "", "1' OR '1'='1", None, 42]


def test_unknown_or_malformed_ids_are_not_found(store, exam) -> None:
    for bad in UNKNOWN:
        calls = [
            lambda: store.patient(bad), lambda: store.exam(bad),
            lambda: store.exams_for(bad), lambda: store.revisions(bad),
            lambda: store.revision(bad, 1),
            lambda: store.create_exam(bad, QUESTIONNAIRE, answers={}, draft={}),
            lambda: store.save_draft(bad, expected_version=1, answers={}, draft={}),
            lambda: sign(store, dataclasses.replace(exam, id=bad), {}),
            lambda: store.begin_amendment(bad, expected_version=1, reason="r", draft={}),
            lambda: store.cancel_amendment(bad, expected_version=1),
        ]
        for call in calls:
            with pytest.raises(NotFoundError):
                call()


def test_unknown_revision_numbers_are_not_found(store, exam) -> None:
    for number in (0, 1, -1, 2**40):
        with pytest.raises(NotFoundError):
            store.revision(exam.id, number)


def test_racing_writers_never_both_win(store, exam) -> None:
    """Tablets saving the same version at the same moment: exactly one wins, each time."""
    writers = 4
    for round_ in range(5):
        current = store.exam(exam.id).version
        barrier = threading.Barrier(writers)
        outcomes: list[object] = []

        def write(n: int) -> None:
            barrier.wait()
            try:
                outcomes.append(store.save_draft(
                    exam.id, expected_version=current, answers={"writer": n},
                    draft=draft({"writer": n})))
            except ConflictError as error:
                outcomes.append(error)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        won = [o for o in outcomes if isinstance(o, ExamRecord)]
        lost = [o for o in outcomes if isinstance(o, ConflictError)]
        assert (len(won), len(lost)) == (1, writers - 1), f"round {round_}"
        assert {error.current for error in lost} == {current + 1}
        assert store.exam(exam.id) == won[0]


def test_unicode_and_nested_json_round_trip_unchanged(store) -> None:
    text = "Dor à palpação — ísquio 🦵 «sentado» 坐骨 \u200b \\u0000 \t\n"
    nested = {"a": [{"b": [[1, 2.5, 0.001, -7, None, True, False, ""]]}],
              "deep": {"x": {"y": {"z": [text, {"é": "ü"}]}}}, "count": 2**53}
    ana = store.add_patient({**ANA, "name": [{"family": "Ñúñez", "given": [text]}],
                             "extension": [{"url": "urn:x", "valueString": text}]})
    assert store.patient(ana.id).resource["name"][0]["given"] == [text]
    exam = store.create_exam(ana.id, QUESTIONNAIRE, answers=nested, draft={"nested": nested})
    read = store.exam(exam.id)
    assert read.answers == nested and read.draft == {"nested": nested}
    signed = sign(store, read, nested, by=text)
    revision = store.revision(signed.id, 1)
    assert revision.answers == nested and revision.signed_by == text


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": "nul\x00"}, {"x": {1, 2}}, ["a"]],
                         ids=["nan", "nul", "set", "list"])
def test_unstorable_json_is_an_input_error_not_a_database_error(store, exam, bad) -> None:
    with pytest.raises(InputError):
        store.save_draft(exam.id, expected_version=1, answers=bad, draft={})
    assert store.exam(exam.id).version == 1


def test_records_are_detached_from_the_store(store, exam) -> None:
    exam.answers["pain.current"] = 10  # type: ignore[index]
    assert store.exam(exam.id).answers == {"pain.current": 4}


def test_a_patient_from_the_ehr_is_linked_once_and_refreshed(store) -> None:
    ehr = "https://ehr.example/fhir"
    first = store.link_patient(ehr, "p-9", {**ANA, "id": "p-9"})
    assert (first.ehr_base, first.ehr_id) == (ehr, "p-9")
    assert first.resource["id"] == first.id != "p-9"  # our id; the EHR's is kept apart
    renamed = {**ANA, "id": "p-9", "name": [{"family": "Renamed", "given": ["Ana"]}]}
    again = store.link_patient(ehr, "p-9", renamed)
    assert again.id == first.id and again.resource["name"] == renamed["name"]
    assert [p.id for p in store.patients("renamed")] == [first.id]
    other_ehr = store.link_patient("https://other.example/fhir", "p-9", ANA)
    assert other_ehr.id != first.id
    assert store.patient(first.id).ehr_id == "p-9"


def test_racing_first_launches_for_one_ehr_patient_make_one_patient(store) -> None:
    launches = 4
    barrier = threading.Barrier(launches)
    ids: list[str] = []

    def link() -> None:
        barrier.wait()
        ids.append(store.link_patient("https://ehr.example/fhir", "p-race", ANA).id)

    threads = [threading.Thread(target=link) for _ in range(launches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == launches and len(set(ids)) == 1
    assert len(store.patients()) == 1


def test_an_exam_keeps_its_encounter_and_launch(store) -> None:
    ana = store.add_patient(ANA)
    launch = "5f0c6a8e-2f55-4c43-9a51-7d7e5d3f0b11"
    exam = store.create_exam(ana.id, QUESTIONNAIRE, answers={}, draft={},
                             encounter={"reference": "Encounter/e-1"}, launch_id=launch)
    read = store.exam(exam.id)
    assert read.encounter == {"reference": "Encounter/e-1"} and read.launch_id == launch
    assert store.create_exam(ana.id, QUESTIONNAIRE, answers={}, draft={}).encounter is None


def test_sqlite_commits_in_wal_with_synchronous_normal(tmp_path) -> None:
    """Every connection is in WAL mode with synchronous=NORMAL (1): a commit does not
    wait for an fsync (README, Storage, says what that trades)."""
    from plugin.adapters import engine as engine_mod

    engine = engine_mod.create(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1
    finally:
        engine.dispose()


def test_a_postgresql_connection_dropped_while_idle_is_replaced_unnoticed(
        postgres_server, monkeypatch) -> None:
    """A pooled connection is pinged when it sat idle (here: always); one the server
    dropped meanwhile is replaced before the caller sees it."""
    from plugin.adapters import engine as engine_mod

    monkeypatch.setattr(engine_mod, "PING_AFTER_IDLE_SECONDS", 0.0)
    name = postgres_server.create_database()
    engine = engine_mod.create(postgres_server.url(name))
    admin = engine_mod.create(postgres_server.url(name))
    try:
        with engine.connect() as conn:
            first = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.connect() as other:  # the server ends the pooled connection
            assert other.exec_driver_sql(f"SELECT pg_terminate_backend({first})").scalar_one()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != first
    finally:
        engine.dispose()
        admin.dispose()
        postgres_server.drop_database(name)
