"""The signed exams' Observations are stored at signature and the FHIR API serves what
was stored: never derived again (a change of knowledge, or derivation failing, after
signing changes nothing served), the current revision's found and the earlier ones kept
(410 on read, vread by revision), search by date with ge/le and sorted by date, and the
revisions signed before Observations were stored filled by the backfill that runs after
the upgrade. On SQLite and PostgreSQL where the database does the work.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugin import create_app
from plugin.adapters import store as store_mod
from plugin.adapters.store import Store
from plugin.record import observations
from tests.support import knowledge_copies, tablet
from tests.support.fhir_http import refused, valid
from tests.support.signin import signed_in
from tests.support.tablet import ANSWERS, JUNE, MARCH, MAY

OBS = "/fhir/Observation"
ANGLE = "slr.left.onset-angle"


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _exams(bundle: dict[str, Any]) -> list[str]:
    """The exam of each match, in order, runs collapsed."""
    found: list[str] = []
    for o in _matches(bundle):
        exam = o["identifier"][0]["value"].split("/")[0]
        if not found or found[-1] != exam:
            found.append(exam)
    return found


def _audit(app: Any) -> list[dict[str, Any]]:
    from plugin.adapters import audit

    return [json.loads(t) for t in audit.events_since(store_mod.from_app(app).engine, None)]


def test_what_search_and_read_serve_is_what_was_stored_at_signature(
        make_app, tmp_path, kb, form, validator, monkeypatch) -> None:
    app = make_app()
    ana = tablet.patient(app)
    exam = tablet.sign(app, kb, tablet.draft(app, form, ana), ana, MAY)
    before = valid(signed_in(app).get(f"{OBS}?patient={ana.id}"), validator)
    # the search serves exactly what the signature stored, in form order
    stored = observations.of_revision(kb, exam_id=exam.id, patient_id=ana.id, number=1,
                                      response=store_mod.from_app(app).revision(exam.id, 1)
                                      .response, signed_at=MAY)
    assert _matches(before) == [o.resource for o in stored]

    # the knowledge changes after the signature: a new app over the same database
    # serves what was signed, not what today's mappings would make
    copy = knowledge_copies.copy(tmp_path / "knowledge")
    mapping = copy / "mappings" / "observations" / "posterior-thigh-exam.json"
    mapping.write_text(mapping.read_text().replace('"text": "Lower limb"',
                                                   '"text": "Changed limb"'))
    changed = make_app({"QUESTIONNAIRES_DIR": str(copy / "questionnaires"),
                        "MAPPINGS_DIR": str(copy / "mappings")})
    assert "Changed limb" in observations.of_revision(
        _kb_of(changed), exam_id=exam.id, patient_id=ana.id, number=1,
        response=store_mod.from_app(app).revision(exam.id, 1).response,
        signed_at=MAY)[2].resource["bodySite"]["text"]  # the copy would derive otherwise
    client = signed_in(changed)
    assert valid(client.get(f"{OBS}?patient={ana.id}"), validator)["entry"] == before["entry"]

    # and when deriving cannot work at all, search and read still serve the record
    def broken(*_: Any, **__: Any) -> Any:
        raise AssertionError("Observations derived at request time")

    monkeypatch.setattr(observations, "of_revision", broken)
    monkeypatch.setattr("plugin.core.bundle.extraction", broken)
    assert valid(client.get(f"{OBS}?patient={ana.id}"), validator)["entry"] == before["entry"]
    angle = next(o for o in _matches(before) if o["identifier"][0]["value"].endswith(ANGLE))
    assert valid(client.get(f"{OBS}/{angle['id']}"), validator) == angle


def _kb_of(app: Any) -> Any:
    from plugin.knowledge import EXTENSION_KEY

    return app.extensions[EXTENSION_KEY]


def test_an_amendment_makes_its_revision_current_and_keeps_the_earlier_one(
        make_app, database_url, kb, form, validator) -> None:
    app = make_app({"DATABASE_URL": database_url})
    client = signed_in(app)
    ana = tablet.patient(app)
    exam = tablet.sign(app, kb, tablet.draft(app, form, ana), ana, MAY)
    first = {o["identifier"][0]["value"]: o
             for o in _matches(valid(client.get(f"{OBS}?patient={ana.id}"), validator))}
    # the amendment re-measures the angle and drops the pop
    dropped = {k: v for k, v in ANSWERS.items() if k != "history.pop"}
    amending = tablet.begin_amendment(app, form, exam, ana)
    # an amendment in progress changes nothing served
    assert {o["identifier"][0]["value"]: o for o in _matches(valid(
        client.get(f"{OBS}?patient={ana.id}"), validator))} == first
    tablet.sign(app, kb, amending, ana, JUNE, {**dropped, ANGLE: 55})
    second = {o["identifier"][0]["value"]: o
              for o in _matches(valid(client.get(f"{OBS}?patient={ana.id}"), validator))}
    pop = first[f"{exam.id}/history.pop"]
    assert set(second) == set(first) - {f"{exam.id}/history.pop"}
    assert {o["meta"]["versionId"] for o in second.values()} == {"2"}
    angle = second[f"{exam.id}/{ANGLE}"]
    assert angle["id"] == first[f"{exam.id}/{ANGLE}"]["id"]
    assert valid(client.get(f"{OBS}/{angle['id']}"), validator)["valueQuantity"]["value"] == 55
    # every revision's version stays readable
    old = valid(client.get(f"{OBS}/{angle['id']}/_history/1"), validator)
    assert old == first[f"{exam.id}/{ANGLE}"] and old["valueQuantity"]["value"] == 40
    assert valid(client.get(f"{OBS}/{angle['id']}/_history/2"), validator) == angle
    assert valid(client.get(f"{OBS}/{pop['id']}/_history/1"), validator) == pop
    # the finding the amendment removed: gone (410), naming where its version is
    events = len(_audit(app))
    gone = refused(client.get(f"{OBS}/{pop['id']}"), validator, 410,
                   f"Observation/{pop['id']}/_history/1")
    assert gone["issue"][0]["code"] == "deleted"
    refused(client.get(f"{OBS}/{pop['id']}/_history/2"), validator, 404, "has no version 2")
    refused(client.get(f"{OBS}/{pop['id']}/_history/x"), validator, 404, "has no version x")
    # each refusal is a failed read of Ana's data, each read a read
    trail = _audit(app)[events:]
    assert [(e["outcome"], e["entity"][0]["what"]["reference"]) for e in trail] == [
        ("4", f"Patient/{ana.id}")] * 3
    events = len(_audit(app))
    client.get(f"{OBS}/{angle['id']}/_history/1")
    assert [(e["outcome"], e["subtype"][0]["code"]) for e in _audit(app)[events:]] == \
        [("0", "vread")]


def test_search_by_date_with_prefixes_and_sorted_by_date(make_app, database_url, kb, form,
                                                         validator) -> None:
    app = make_app({"DATABASE_URL": database_url})
    ana, rui, march, june, _ = tablet.ana_and_rui(app, kb, form)
    client = signed_in(app)

    def exams(query: str) -> list[str]:
        return _exams(valid(client.get(f"{OBS}?patient={ana.id}&{query}"), validator))

    # the amended exam's Observations are dated by its current revision (June)
    assert exams("") == [june.id, march.id]  # newest first by default
    assert exams("_sort=-date") == [june.id, march.id]
    assert exams("_sort=date") == [march.id, june.id]
    assert exams("date=ge2026-04-01") == [june.id]
    assert exams("date=le2026-03-31") == [march.id]
    assert exams("date=2026-03-01") == [march.id]  # eq: the whole day
    assert exams("date=eq2026-06-01T10:00:00Z") == [june.id]
    assert exams("date=eq2026-06-01T12:00:00%2B02:00") == [june.id]  # the same instant
    assert exams("date=ge2026-03-01&date=le2026-06-01&_sort=date") == [march.id, june.id]
    assert exams("date=ge2026-03-02&date=le2026-05-31") == []  # May was amended in June
    assert exams("date=lt2026-03-01") == []
    assert exams("date=le2026-03-01,ge2026-06-01&_sort=date") == [march.id, june.id]
    assert exams("date=gt2026-03-01T09:00:00Z&date=lt2026-06-01T10:00:00Z") == []
    # sorting and filters hold across pages
    everything = _matches(valid(client.get(f"{OBS}?patient={ana.id}&_sort=date"), validator))
    paged: list[str] = []
    url = f"{OBS}?patient={ana.id}&_sort=date&date=ge2026-01-01&_count=3"
    while url:
        page = valid(client.get(url), validator)
        assert page["total"] == len(everything)
        paged += [o["id"] for o in _matches(page)]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"),
                   "").removeprefix("http://localhost")
    assert paged == [o["id"] for o in everything]
    assert _exams(valid(client.get(f"{OBS}?patient={rui.id}&date=ge2000"), validator)) == []


def test_code_and_date_together(make_app, kb, form, validator) -> None:
    app = make_app()
    ana, _, march, june, _ = tablet.ana_and_rui(app, kb, form)
    client = signed_in(app)
    angles = _matches(valid(client.get(
        f"{OBS}?patient={ana.id}&code=slr.onset-angle&_sort=date"), validator))
    assert [o["valueQuantity"]["value"] for o in angles] == [40, 55]  # March, then June
    assert [o["id"].startswith(march.id) for o in angles] == [True, False]
    later = _matches(valid(client.get(
        f"{OBS}?patient={ana.id}&code=slr.onset-angle&date=ge2026-04-01"), validator))
    assert [o["id"] for o in later] == [angles[1]["id"]] and later[0]["id"].startswith(june.id)


def _at_0006(database_url: str) -> None:
    """A database whose signed revisions have no stored Observations, as the release
    before 0010 left them. It is migrated to the head (the store of this release writes
    only the current schema: later migrations added columns it fills) and the records
    are signed without storing their Observations (``materialise=False``); the upgrade
    from 0006 itself is tests/adapters/test_migrations.py's."""
    store = Store(database_url)
    store.upgrade()
    store.dispose()


def test_revisions_signed_before_the_upgrade_are_backfilled(
        tmp_path: Path, database_url, kb, form, validator) -> None:
    _at_0006(database_url)
    settings = {"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url}
    old = create_app({**settings, "DATABASE_UPGRADE": False})
    ana = tablet.patient(old)
    march = tablet.sign(old, kb, tablet.draft(old, form, ana), ana, MARCH, materialise=False)
    june = tablet.sign(old, kb, tablet.begin_amendment(
        old, form, tablet.sign(old, kb, tablet.draft(old, form, ana), ana, MAY,
                               materialise=False), ana),
        ana, JUNE, tablet.AMENDED, materialise=False)
    store_mod.from_app(old).dispose()

    upgraded = create_app(settings)  # migrates (nothing left), then fills what was signed
    store = store_mod.from_app(upgraded)
    try:
        assert store.revisions_without_observations() == []
        assert observations.backfill(store, kb) == 0  # again: nothing left to do
        served = _matches(valid(signed_in(upgraded).get(f"{OBS}?patient={ana.id}"),
                                validator))
        expected = [o.resource for exam, n, when in ((june, 2, JUNE), (march, 1, MARCH))
                    for o in observations.of_revision(
                        kb, exam_id=exam.id, patient_id=ana.id, number=n,
                        response=store.revision(exam.id, n).response, signed_at=when)]
        assert served == expected
        # the amended exam's first revision was filled too: its version is readable
        angle = next(o for o in served if o["id"].startswith(june.id)
                     and o["identifier"][0]["value"].endswith(ANGLE))
        first = valid(signed_in(upgraded).get(f"{OBS}/{angle['id']}/_history/1"), validator)
        assert first["valueQuantity"]["value"] == 40 and angle["valueQuantity"]["value"] == 55
    finally:
        store.dispose()


def test_the_backfill_skips_what_another_process_stored(sqlite_store, kb, form) -> None:
    """Two processes upgrading at once: the revision the other one filled is left alone,
    and a revision that does not exist is refused."""
    store = sqlite_store
    ana = store.add_patient({"resourceType": "Patient", "name": [{"family": "Silva"}]})
    exam = store.create_exam(ana.id, form.canonical, answers=ANSWERS, draft={})
    from plugin.record import signoff

    signed = signoff.sign(kb, ANSWERS, record_id=exam.id, patient=ana.resource,
                          signer=signoff.Signer("Dr Lee"), signed_at=MAY, revision=1)
    store.sign(exam.id, expected_version=exam.version, answers=ANSWERS,
               response=signed.response, provenance=signed.provenance, signed_by="Dr Lee",
               signed_at=MAY)
    records = observations.of_revision(kb, exam_id=exam.id, patient_id=ana.id, number=1,
                                       response=signed.response, signed_at=MAY)
    assert store.revisions_without_observations() == [(exam.id, 1)]
    assert store.add_observations(exam.id, 1, records) is True
    assert store.add_observations(exam.id, 1, records) is False  # already there
    assert store.add_observations(exam.id, 2, records) is False  # no such revision
    assert observations.backfill(store, kb) == 0
    total, page = store.search_observations(patient_ids=[ana.id])
    assert (total, [o.resource for o in page]) == (len(records),
                                                   [o.resource for o in records])


def test_a_signature_refuses_observations_of_another_revision(sqlite_store, kb, form) -> None:
    """Observations made for another exam or revision are refused with the signature:
    nothing is written."""
    store = sqlite_store
    ana = store.add_patient({"resourceType": "Patient", "name": [{"family": "Silva"}]})
    exam = store.create_exam(ana.id, form.canonical, answers=ANSWERS, draft={})
    from plugin.errors import InputError
    from plugin.record import signoff

    signed = signoff.sign(kb, ANSWERS, record_id=exam.id, patient=ana.resource,
                          signer=signoff.Signer("Dr Lee"), signed_at=MAY, revision=1)
    wrong = observations.of_revision(kb, exam_id=exam.id, patient_id=ana.id, number=2,
                                     response=signed.response, signed_at=MAY)
    with pytest.raises(InputError, match="does not belong to revision 1"):
        store.sign(exam.id, expected_version=exam.version, answers=ANSWERS,
                   response=signed.response, provenance=signed.provenance,
                   signed_by="Dr Lee", signed_at=MAY, observations=wrong)
    assert store.exam(exam.id).state == "draft" and store.exam(exam.id).revisions == 0
    assert store.search_observations(patient_ids=[ana.id]) == (0, [])


def test_db_upgrade_backfills_when_the_service_does_not_upgrade(tmp_path: Path, kb,
                                                                form) -> None:
    """With DATABASE_UPGRADE off the operator's ``db upgrade`` is the upgrade: it
    migrates and fills the Observations of what was signed before."""
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'exam.sqlite3'}"
    _at_0006(url)
    old = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": url,
                      "DATABASE_UPGRADE": False})
    ana = tablet.patient(old)
    exam = tablet.sign(old, kb, tablet.draft(old, form, ana), ana, MAY, materialise=False)
    store_mod.from_app(old).dispose()
    result = subprocess.run([sys.executable, "-m", "plugin", "db", "upgrade"],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "PLUGIN_DATABASE_URL": url,
                                 "PLUGIN_DATABASE_UPGRADE": "false"})
    assert result.returncode == 0, result.stderr
    store = Store(url)
    try:
        assert store.revisions_without_observations() == []
        total, page = store.search_observations(patient_ids=[ana.id])
        assert total == len(ANSWERS) and {o.exam_id for o in page} == {exam.id}
    finally:
        store.dispose()
