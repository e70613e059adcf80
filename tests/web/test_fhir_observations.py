"""The signed exams' Observations on the FHIR API: search (patient/subject required,
code tokens, paging, strict parameters) and read. They must be exactly the Observations
of the record Bundle the EHR receives, with references that resolve on this server, and
every one must validate under fhir.resources AND the independent validator.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from plugin import __version__
from plugin.adapters import store as store_mod
from plugin.record import pipeline, signoff
from tests.support import tablet
from tests.support.fhir_http import BASE, refused, valid
from tests.support.tablet import JUNE, MAY
from tests.support.signin import signed_in

OBS = "/fhir/Observation"
#: A finding tablet.ANSWERS records (40°) and AMENDED changes (55°).
ANGLE = "slr.left.onset-angle"

#: An id no record has (fixed: parametrized ids must be the same in every test worker).
UNKNOWN = "5fc870c7-6a43-49c4-b5d4-a8f03d42cff4"


@pytest.fixture()
def records(make_app, database_url, kb, form):
    """On SQLite and PostgreSQL: Ana with a signed exam (March) and an amended one
    (May, amended in June), Rui with a draft only."""
    app = make_app({"DATABASE_URL": database_url})
    return (app, *tablet.ana_and_rui(app, kb, form))


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _identifiers(bundle: dict[str, Any]) -> list[str]:
    return [o["identifier"][0]["value"] for o in _matches(bundle)]


def _expected(kb: Any, exam_id: str, patient: Any, when: dt.datetime,
              answers: dict[str, Any], revision: int) -> list[dict[str, Any]]:
    """The Observations of the record Bundle the tablet queues for the EHR at sign-off."""
    signed = signoff.sign(kb, answers, record_id=exam_id, patient=patient.resource,
                          signer=signoff.Signer("Dr Lee"), signed_at=when, revision=revision,
                          reason="Angle re-measured" if revision > 1 else None)
    record = pipeline.record(kb, signed.exam, plugin_version=__version__, recorded=when)
    return [e["resource"] for e in record["entry"]
            if e["resource"]["resourceType"] == "Observation"]


def test_search_by_patient_gives_the_current_signed_revisions_observations(
        records, kb, validator) -> None:
    app, ana, rui, march, june, draft = records
    client = signed_in(app)
    bundle = valid(client.get(f"{OBS}?patient={ana.id}"), validator)
    found = _matches(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == len(found) > 0

    # newest exam first (the amended one), then March's; a draft has none
    exams = [o["identifier"][0]["value"].split("/")[0] for o in found]
    assert exams == sorted(exams, key=lambda e: e != june.id)
    assert set(exams) == {june.id, march.id}

    # exactly what the EHR receives, but for what is served here: id, meta, and the
    # references, which resolve on this server
    amended = [o for o in found if o["identifier"][0]["value"].startswith(june.id)]
    sent = _expected(kb, june.id, ana, JUNE, dict(june.answers), 2)
    assert [o["identifier"] for o in amended] == [o["identifier"] for o in sent]
    for served, received in zip(amended, sent):
        assert {k: v for k, v in served.items() if k not in ("id", "meta", "derivedFrom")} \
            == {k: v for k, v in received.items() if k != "derivedFrom"}
        assert served["meta"]["versionId"] == "2"
        assert served["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{june.id}",
                                          "type": "QuestionnaireResponse"}]
        assert received["derivedFrom"][0]["reference"].startswith("urn:uuid:")
    angle = next(o for o in amended if o["identifier"][0]["value"].endswith(ANGLE))
    assert angle["valueQuantity"]["value"] == 55  # the amendment replaced 40

    for entry in bundle["entry"]:
        observation = entry["resource"]
        assert entry["fullUrl"] == f"{BASE}/Observation/{observation['id']}"
        read = client.get(entry["fullUrl"].removeprefix("http://localhost"))
        assert valid(read, validator) == observation  # read round-trips the search
        assert read.headers["ETag"] == f'W/"{observation["meta"]["versionId"]}"'
        for reference in (observation["subject"]["reference"],
                          observation["derivedFrom"][0]["reference"]):
            valid(client.get(f"/fhir/{reference}"), validator)
        assert observation["subject"]["reference"] == f"Patient/{ana.id}"

    # the same patient named every way; the draft-only patient has none
    for query in (f"patient=Patient/{ana.id}", f"subject=Patient/{ana.id}",
                  f"subject={ana.id}", f"patient={BASE}/Patient/{ana.id}"):
        assert _identifiers(valid(client.get(f"{OBS}?{query}"), validator)) == \
            _identifiers(bundle)
    assert draft.patient_id == rui.id
    for query in (f"patient={rui.id}", f"patient={uuid.uuid4()}", "patient=not-a-uuid",
                  f"subject=Group/{ana.id}", f"patient={ana.id}&subject={rui.id}"):
        empty = valid(client.get(f"{OBS}?{query}"), validator)
        assert (empty["total"], "entry" in empty) == (0, False)
    both = valid(client.get(f"{OBS}?patient={ana.id},{rui.id}"), validator)
    assert both["total"] == bundle["total"]


def test_ids_are_stable_across_an_amendment_and_drafts_never_show(
        make_app, kb, form, validator) -> None:
    app = make_app()
    client = signed_in(app)
    ana = tablet.patient(app)
    exam = tablet.draft(app, form, ana)
    assert valid(client.get(f"{OBS}?patient={ana.id}"), validator)["total"] == 0
    exam = tablet.sign(app, kb, exam, ana, MAY)
    first = {o["identifier"][0]["value"]: o for o in
             _matches(valid(client.get(f"{OBS}?patient={ana.id}"), validator))}
    amended = tablet.amended(app, kb, form, exam, ana, JUNE)
    assert amended.revisions == 2
    second = {o["identifier"][0]["value"]: o for o in
              _matches(valid(client.get(f"{OBS}?patient={ana.id}"), validator))}
    assert first.keys() == second.keys()
    assert all(first[k]["id"] == second[k]["id"] for k in first)
    assert {o["meta"]["versionId"] for o in second.values()} == {"2"}
    angle = second[f"{exam.id}/{ANGLE}"]
    assert valid(client.get(f"{OBS}/{angle['id']}"), validator)["valueQuantity"]["value"] == 55


def test_search_by_code(make_app, kb, form, validator) -> None:
    app = make_app()
    client = signed_in(app)
    ana = tablet.patient(app)
    exam = tablet.sign(app, kb, tablet.draft(app, form, ana), ana, MAY)
    everything = _matches(valid(client.get(f"{OBS}?patient={ana.id}"), validator))
    angle = next(o for o in everything if o["identifier"][0]["value"].endswith(ANGLE))
    onset = next(o for o in everything
                 if o["identifier"][0]["value"] == f"{exam.id}/history.onset")
    coding = angle["code"]["coding"][0]
    other = onset["code"]["coding"][0]

    def found(query: str) -> list[str]:
        return [o["id"] for o in _matches(valid(client.get(
            f"{OBS}?patient={ana.id}&{query}"), validator))]

    assert found(f"code={coding['code']}") == [angle["id"]]
    assert found(f"code={coding['system']}|{coding['code']}") == [angle["id"]]
    assert found(f"code=http://example.org/other|{coding['code']}") == []
    assert found(f"code=|{coding['code']}") == []  # |code: a coding without a system
    assert found(f"code={coding['code']},{other['code']}") == \
        [o["id"] for o in everything if o in (angle, onset)]  # form order
    assert found(f"code={coding['code']}&code={other['code']}") == []  # repeats AND
    assert found(f"code={coding['system']}|") == [
        o["id"] for o in everything
        if any(c.get("system") == coding["system"] for c in o["code"]["coding"])]
    assert found("code=no-such-code") == []


def test_paging(make_app, kb, form, validator) -> None:
    app = make_app()
    client = signed_in(app)
    ana = tablet.patient(app)
    tablet.sign(app, kb, tablet.draft(app, form, ana), ana, MAY)
    everything = [o["id"] for o in _matches(valid(client.get(f"{OBS}?patient={ana.id}"),
                                                  validator))]
    assert len(everything) >= 3
    seen: list[str] = []
    url = f"{OBS}?patient={ana.id}&_count=2"
    while url:
        page = valid(client.get(url), validator)
        assert page["total"] == len(everything)
        seen += [o["id"] for o in _matches(page)]
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert links["self"].startswith(f"{BASE}/Observation?patient={ana.id}")
        url = links.get("next", "").removeprefix("http://localhost")
    assert seen == everything
    summary = valid(client.get(f"{OBS}?patient={ana.id}&_count=0"), validator)
    assert (summary["total"], "entry" in summary) == (len(everything), False)


def test_patient_is_required_and_unknown_parameters_are_refused(make_app, kb, form,
                                                                validator) -> None:
    app = make_app()
    client = signed_in(app)
    ana = tablet.patient(app)
    tablet.sign(app, kb, tablet.draft(app, form, ana), ana, MAY)
    for query in ("", "code=1234-5", "patient=", "_count=5"):
        refused(client.get(f"{OBS}?{query}"), validator, 400, "needs patient (or subject)")
    for query in (f"patient={ana.id}&status=final", f"patient={ana.id}&code:text=angle",
                  f"patient={ana.id}&_elements=code"):
        refused(client.get(f"{OBS}?{query}"), validator, 400, "Unsupported search parameter")
    lenient = valid(client.get(f"{OBS}?patient={ana.id}&_elements=code",
                               headers={"Prefer": "handling=lenient"}), validator)
    assert lenient["total"] > 0
    warning = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "_elements" in warning[0]["resource"]["issue"][0]["details"]["text"]
    for query in (f"patient={ana.id}&_sort=code", f"patient={ana.id}&_sort=date,code"):
        refused(client.get(f"{OBS}?{query}"), validator, 400, "sorts by date or -date")
    refused(client.get(f"{OBS}?patient={ana.id}&_sort=date&_sort=-date"), validator, 400,
            "only once")
    for query in (f"patient={ana.id}&_count=x", f"patient={ana.id}&code=a|b|c",
                  f"patient={ana.id}&date=2026-13-01", f"patient={ana.id}&date=yesterday"):
        refused(client.get(f"{OBS}?{query}"), validator, 400, "")
    refused(client.get(f"{OBS}?patient={ana.id}&date=ap2026-05-01"), validator, 400,
            "'ap' prefix is not supported")
    # the records blueprint is nested in the API's: its _format check applies here too
    refused(client.get(f"{OBS}?patient={ana.id}&_format=xml"), validator, 406,
            "_format=xml is not served")


@pytest.mark.parametrize("id_", [
    f"{UNKNOWN}-0123456789abcdef", "not-an-id", f"{UNKNOWN}", "x" * 64,
])
def test_unknown_observations_are_404(client, validator, id_: str) -> None:
    refused(client.get(f"{OBS}/{id_}"), validator, 404, "is not known to this server")


def test_a_draft_exams_observation_id_is_404(make_app, kb, form, validator) -> None:
    """An id of a signed exam's finding, read while that finding is not recorded in the
    current revision (or the exam is not signed), is unknown."""
    app = make_app()
    client = signed_in(app)
    ana = tablet.patient(app)
    signed = tablet.sign(app, kb, tablet.draft(app, form, ana), ana, MAY)
    draft = tablet.draft(app, form, ana)
    angle = next(o for o in _matches(valid(client.get(f"{OBS}?patient={ana.id}"), validator))
                 if o["identifier"][0]["value"].endswith(ANGLE))
    suffix = angle["id"].removeprefix(signed.id)
    refused(client.get(f"{OBS}/{draft.id}{suffix}"), validator, 404, "not known")
    assert store_mod.from_app(app).current(draft.id).revision is None
