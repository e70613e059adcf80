"""The stored exams on the FHIR API: QuestionnaireResponse read, vread, history and search,
Patient read. Data goes in through the store (as the tablet writes it); everything that
comes back must validate under fhir.resources AND the independent validator.
"""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from plugin.adapters import store as store_mod
from tests.support import tablet
from tests.support.fhir_http import BASE, refused, valid
from tests.support.tablet import AMENDED, JUNE, MAY
from tests.support.signin import signed_in

QR = "/fhir/QuestionnaireResponse"

#: An id no record has (fixed: parametrized ids must be the same in every test worker).
UNKNOWN = "5fc870c7-6a43-49c4-b5d4-a8f03d42cff4"


@pytest.fixture()
def app(make_app):
    return make_app()


def _angle(qr: dict[str, Any]) -> int:
    slr = next(i for i in qr["item"] if i["linkId"] == "slr")
    left = next(i for i in slr["item"] if i["linkId"] == "slr.left")
    angle = next(i for i in left["item"] if i["linkId"] == "slr.left.onset-angle")
    return angle["answer"][0]["valueInteger"]


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])
            if e["search"]["mode"] == "match"]


# --- read, vread, history -------------------------------------------------------------------

def test_a_draft_reads_as_in_progress_and_its_subject_resolves(app, client, form,
                                                                 validator) -> None:
    patient = tablet.patient(app)
    exam = tablet.draft(app, form, patient)
    response = client.get(f"{QR}/{exam.id}")
    qr = valid(response, validator)
    assert (qr["id"], qr["status"]) == (exam.id, "in-progress")
    assert qr["meta"]["versionId"] == f"draft-{exam.version}"
    assert response.headers["ETag"] == f'W/"draft-{exam.version}"'
    assert qr["meta"]["lastUpdated"].endswith("Z") and "Last-Modified" in response.headers
    assert qr["identifier"]["value"] == exam.id

    assert qr["subject"]["reference"] == f"Patient/{patient.id}"
    read = client.get(f"/fhir/{qr['subject']['reference']}")
    resource = valid(read, validator)
    assert (resource["id"], resource["meta"]["versionId"]) == (patient.id, "1")
    assert resource["name"] == patient.resource["name"]
    assert read.headers["ETag"] == 'W/"1"'

    # the current draft can be vread; once superseded by an autosave it is gone
    assert valid(client.get(f"{QR}/{exam.id}/_history/draft-{exam.version}"), validator) == qr
    saved = store_mod.from_app(app).save_draft(
        exam.id, expected_version=exam.version, answers=AMENDED,
        draft=tablet.draft_qr(form, exam.id, patient, AMENDED))
    again = client.get(f"{QR}/{exam.id}")
    assert again.headers["ETag"] == f'W/"draft-{saved.version}"' != response.headers["ETag"]
    assert _angle(again.get_json()) == 55
    refused(client.get(f"{QR}/{exam.id}/_history/draft-{exam.version}"), validator, 404,
            "drafts are not kept")

    history = valid(client.get(f"{QR}/{exam.id}/_history"), validator)
    assert (history["type"], history["total"]) == ("history", 1)
    assert history["entry"][0]["request"] == {"method": "POST",
                                              "url": "QuestionnaireResponse"}
    assert history["entry"][0]["resource"]["meta"]["versionId"] == f"draft-{saved.version}"


def test_a_signed_exam_reads_as_its_latest_revision_and_keeps_every_one(
        app, client, kb, form, validator) -> None:
    patient = tablet.patient(app)
    exam = tablet.sign(app, kb, tablet.draft(app, form, patient), patient, MAY)
    first = client.get(f"{QR}/{exam.id}")
    qr = valid(first, validator)
    assert (qr["status"], qr["meta"]["versionId"], first.headers["ETag"]) == \
        ("completed", "1", 'W/"1"')
    assert qr["authored"] == "2026-05-01T09:00:00+00:00"
    assert qr["meta"]["lastUpdated"] == "2026-05-01T09:00:00.000Z"

    # an amendment in progress is not shown: revision 1 stays current until signed
    exam = tablet.begin_amendment(app, form, exam, patient)
    assert valid(client.get(f"{QR}/{exam.id}"), validator) == qr
    exam = tablet.sign(app, kb, exam, patient, JUNE, AMENDED)

    current = client.get(f"{QR}/{exam.id}")
    amended = valid(current, validator)
    assert (amended["status"], amended["meta"]["versionId"], current.headers["ETag"]) == \
        ("amended", "2", 'W/"2"')
    assert _angle(amended) == 55
    old = client.get(f"{QR}/{exam.id}/_history/1")
    assert old.headers["ETag"] == 'W/"1"'
    assert valid(old, validator) == qr and _angle(qr) == 40
    assert valid(client.get(f"{QR}/{exam.id}/_history/2"), validator) == amended
    for missing in ("3", "01", "0", "draft-1", "x" * 70):
        refused(client.get(f"{QR}/{exam.id}/_history/{missing}"), validator, 404,
                "version")

    history = valid(client.get(f"{QR}/{exam.id}/_history"), validator)
    assert (history["type"], history["total"]) == ("history", 2)
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]
    assert [e["response"]["status"] for e in history["entry"]] == ["200 OK", "201 Created"]
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    assert {e["fullUrl"] for e in history["entry"]} == {f"{BASE}/QuestionnaireResponse/{exam.id}"}
    assert history["entry"][1]["resource"] == qr


@pytest.mark.parametrize("path", [
    f"{QR}/{UNKNOWN}", f"{QR}/not-an-id", f"{QR}/{UNKNOWN}/_history",
    f"{QR}/{UNKNOWN}/_history/1", f"/fhir/Patient/{UNKNOWN}", "/fhir/Patient/nope",
])
def test_unknown_ids_are_404_operation_outcomes(client, validator, path) -> None:
    refused(client.get(path), validator, 404, "is not known to this server")


# --- search ---------------------------------------------------------------------------------

def test_search_by_patient_status_and_authored(make_app, database_url, kb, form,
                                               validator) -> None:
    """On SQLite and on PostgreSQL: the same answers."""
    app = make_app({"DATABASE_URL": database_url})
    client = signed_in(app)
    ana, rui, march, june, draft = tablet.ana_and_rui(app, kb, form)

    def found(query: str) -> list[str]:
        bundle = valid(client.get(f"{QR}?{query}"), validator)
        assert bundle["type"] == "searchset"
        assert bundle["total"] == len(bundle.get("entry", []))
        for entry in bundle.get("entry", []):
            assert entry["fullUrl"] == f"{BASE}/QuestionnaireResponse/{entry['resource']['id']}"
            assert entry["search"] == {"mode": "match"}
        return _ids(bundle)

    assert found("") == [draft.id, june.id, march.id]  # the most recent first
    assert found(f"patient={ana.id}") == [june.id, march.id]
    assert found(f"patient=Patient/{ana.id}") == [june.id, march.id]
    assert found(f"patient={BASE}/Patient/{rui.id}") == [draft.id]
    assert found(f"subject=Patient/{rui.id}") == [draft.id]
    assert found(f"patient={ana.id},{rui.id}") == [draft.id, june.id, march.id]
    assert found(f"patient={ana.id}&subject=Patient/{rui.id}") == []
    assert found(f"subject=Group/{ana.id}") == []
    assert found(f"patient={uuid.uuid4()}") == []
    assert found("patient=not-a-uuid") == []  # no database error on PostgreSQL's uuid

    assert found("status=completed") == [march.id]
    assert found("status=amended,in-progress") == [draft.id, june.id]
    assert found("status=http://hl7.org/fhir/questionnaire-answers-status|amended") == \
        [june.id]
    assert found("status=http://example.org/other|amended") == []
    assert found("status=stopped") == []
    assert found(f"patient={ana.id}&status=completed") == [march.id]

    # authored: the signature's time (the amended one's is June), a draft's last save
    assert found("authored=ge2026-01-01&authored=lt2026-06-01") == [march.id]
    assert found("authored=2026-06") == [june.id]
    assert found("authored=2026-06-01T10:00:00Z") == [june.id]
    assert found("authored=gt2026-06-01T10:00:00Z&authored=lt2027-01-01") == \
        ([draft.id] if draft.updated.year == 2026 else [])
    assert found("authored=le2026-03-01T11:00:00%2B02:00") == [march.id]
    assert found("authored=lt2026-03-01,2026-06") == [june.id]
    assert found("authored=ne2026-03-01") == [draft.id, june.id]
    assert found("authored=eb2026-05&status=completed") == [march.id]

    # paging: total counts every match; next pages through them in order
    page = valid(client.get(f"{QR}?patient={ana.id}&_count=1"), validator)
    assert (page["total"], _ids(page)) == (2, [june.id])
    links = {link["relation"]: link["url"] for link in page["link"]}
    assert links["self"].startswith(f"{BASE}/QuestionnaireResponse?patient={ana.id}")
    following = valid(client.get(links["next"].removeprefix("http://localhost")), validator)
    assert (following["total"], _ids(following)) == (2, [march.id])
    assert "next" not in {link["relation"] for link in following["link"]}
    summary = valid(client.get(f"{QR}?_count=0"), validator)
    assert (summary["total"], "entry" in summary) == (3, False)


def test_unknown_parameters_are_refused_unless_lenient(app, client, form, validator) -> None:
    patient = tablet.patient(app)
    exam = tablet.draft(app, form, patient)
    for query in ("_sort=-authored", "status:not=completed", "questionnaire=x",
                  f"patient={patient.id}&identifier=x"):
        refused(client.get(f"{QR}?{query}"), validator, 400, "Unsupported search parameter")
    lenient = client.get(f"{QR}?_sort=-authored&patient={patient.id}",
                         headers={"Prefer": "handling=lenient"})
    bundle = valid(lenient, validator)
    assert (bundle["total"], _ids(bundle)) == (1, [exam.id])
    warning = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert "_sort" in warning[0]["resource"]["issue"][0]["details"]["text"]
    assert "_sort" not in bundle["link"][0]["url"]  # self shows what was applied
    strict = client.get(f"{QR}?_sort=-authored", headers={"Prefer": "handling=strict"})
    refused(strict, validator, 400, "Unsupported search parameter(s): _sort")
    refused(client.get(f"{QR}/{exam.id}/_history?_since=2026-01-01"), validator, 400,
            "Unsupported search parameter(s): _since")


@pytest.mark.parametrize(("query", "text"), [
    ("authored=2026-13-01", "not a valid date"),
    ("authored=yesterday", "not a FHIR date search value"),
    ("authored=ge2026-01-01T25:00Z", "not a valid date"),
    ("authored=2026-01-01T10:00%2B25:00", "not a valid date"),
    ("authored=0001-01-01T00:00%2B14:00", "not a valid date"),
    ("authored=ap2026-01-01", "'ap' prefix is not supported"),
    ("status=done", "not a QuestionnaireResponse status"),
    ("_count=-1", "_count must be a whole number"),
    ("_count=1&_count=2", "_count may be given only once"),
])
def test_bad_search_values_are_400(client, validator, query: str, text: str) -> None:
    refused(client.get(f"{QR}?{query}"), validator, 400, text)


def test_metadata_lists_the_stored_record_interactions(client, validator) -> None:
    statement = valid(client.get("/fhir/metadata"), validator)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    qr = resources["QuestionnaireResponse"]
    assert [i["code"] for i in qr["interaction"]] == \
        ["read", "vread", "history-instance", "search-type"]
    assert {p["name"]: p["type"] for p in qr["searchParam"]} == \
        {"patient": "reference", "subject": "reference", "status": "token",
         "authored": "date"}
    assert [o["name"] for o in qr["operation"]] == ["extract", "assess"]
    assert [i["code"] for i in resources["Patient"]["interaction"]] == ["read"]
    assert "searchParam" not in resources["Patient"]
