"""The stored exams on the FHIR API: QuestionnaireResponse read, vread, history and search,
Patient read. Data goes in through the store (as the tablet writes it); everything that
comes back must validate under fhir.resources AND the independent validator.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from plugin.adapters import store as store_mod
from plugin.core import drafts, patient as patient_mod, signoff
from plugin.core.responses import Context
from tests.support import fhir_http
from tests.support.conformance import IndependentValidator, assert_conformant

QR = "/fhir/QuestionnaireResponse"
BASE = "http://localhost/fhir"
FHIR_JSON = fhir_http.FHIR_JSON
ANSWERS = {"slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee",
           "history.onset": "sudden", "history.pop": True}
AMENDED = {**ANSWERS, "slr.left.onset-angle": 55}
MARCH = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
MAY = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.timezone.utc)
JUNE = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def validator():
    with IndependentValidator() as v:
        yield v


@pytest.fixture()
def app(make_app):
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


# --- writing records as the tablet does ---------------------------------------------------

def _patient(app: Any, family: str = "Silva", mrn: str = "MRN-1") -> store_mod.PatientRecord:
    return store_mod.from_app(app).add_patient({
        "resourceType": "Patient", "name": [{"family": family, "given": ["Ana"]}],
        "birthDate": "1986-03-14", "identifier": [{"system": "urn:mrn", "value": mrn}]})


def _draft_qr(form: Any, exam_id: str, patient: store_mod.PatientRecord,
              answers: dict[str, Any]) -> dict[str, Any]:
    context = Context(subject=patient_mod.reference(patient.resource), status="in-progress",
                      authored=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      identifier=exam_id)
    return drafts.response(form, drafts.check(form, answers), context)


def _draft(app: Any, form: Any, patient: store_mod.PatientRecord,
           answers: dict[str, Any] = ANSWERS) -> store_mod.ExamRecord:
    store = store_mod.from_app(app)
    exam = store.create_exam(patient.id, form.canonical, answers=answers, draft={})
    return store.save_draft(exam.id, expected_version=exam.version, answers=answers,
                            draft=_draft_qr(form, exam.id, patient, answers))


def _sign(app: Any, kb: Any, exam: store_mod.ExamRecord, patient: store_mod.PatientRecord,
          when: dt.datetime, answers: dict[str, Any] = ANSWERS) -> store_mod.ExamRecord:
    signed = signoff.sign(kb, answers, record_id=exam.id, patient=patient.resource,
                          signer="Dr Lee", signed_at=when, revision=exam.revisions + 1,
                          reason=exam.amend_reason)
    return store_mod.from_app(app).sign(
        exam.id, expected_version=exam.version, answers=answers, response=signed.response,
        provenance=signed.provenance, signed_by="Dr Lee", signed_at=when)


def _begin_amendment(app: Any, form: Any, exam: store_mod.ExamRecord,
                     patient: store_mod.PatientRecord) -> store_mod.ExamRecord:
    return store_mod.from_app(app).begin_amendment(
        exam.id, expected_version=exam.version, reason="Angle re-measured",
        draft=_draft_qr(form, exam.id, patient, dict(exam.answers)))


def _amended(app: Any, kb: Any, form: Any, exam: store_mod.ExamRecord,
             patient: store_mod.PatientRecord, when: dt.datetime) -> store_mod.ExamRecord:
    exam = _begin_amendment(app, form, exam, patient)
    return _sign(app, kb, exam, patient, when, AMENDED)


# --- reading the answers --------------------------------------------------------------------

def _ok(response: Any, validator: IndependentValidator) -> dict[str, Any]:
    """A 200 FHIR JSON answer, conformant (a Bundle's entries one by one as well)."""
    body = fhir_http.ok(response)
    assert_conformant(validator, body)
    for entry in body.get("entry", []) if body["resourceType"] == "Bundle" else []:
        assert_conformant(validator, entry["resource"])
    return body


def _refused(response: Any, validator: IndependentValidator, status: int,
             text: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert_conformant(validator, body)
    assert text in " | ".join(i["details"]["text"] for i in body["issue"])
    return body


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
    patient = _patient(app)
    exam = _draft(app, form, patient)
    response = client.get(f"{QR}/{exam.id}")
    qr = _ok(response, validator)
    assert (qr["id"], qr["status"]) == (exam.id, "in-progress")
    assert qr["meta"]["versionId"] == f"draft-{exam.version}"
    assert response.headers["ETag"] == f'W/"draft-{exam.version}"'
    assert qr["meta"]["lastUpdated"].endswith("Z") and "Last-Modified" in response.headers
    assert qr["identifier"]["value"] == exam.id

    assert qr["subject"]["reference"] == f"Patient/{patient.id}"
    read = client.get(f"/fhir/{qr['subject']['reference']}")
    resource = _ok(read, validator)
    assert (resource["id"], resource["meta"]["versionId"]) == (patient.id, "1")
    assert resource["name"] == patient.resource["name"]
    assert read.headers["ETag"] == 'W/"1"'

    # the current draft can be vread; once superseded by an autosave it is gone
    assert _ok(client.get(f"{QR}/{exam.id}/_history/draft-{exam.version}"), validator) == qr
    saved = store_mod.from_app(app).save_draft(
        exam.id, expected_version=exam.version, answers=AMENDED,
        draft=_draft_qr(form, exam.id, patient, AMENDED))
    again = client.get(f"{QR}/{exam.id}")
    assert again.headers["ETag"] == f'W/"draft-{saved.version}"' != response.headers["ETag"]
    assert _angle(again.get_json()) == 55
    _refused(client.get(f"{QR}/{exam.id}/_history/draft-{exam.version}"), validator, 404,
             "drafts are not kept")

    history = _ok(client.get(f"{QR}/{exam.id}/_history"), validator)
    assert (history["type"], history["total"]) == ("history", 1)
    assert history["entry"][0]["request"] == {"method": "POST",
                                              "url": "QuestionnaireResponse"}
    assert history["entry"][0]["resource"]["meta"]["versionId"] == f"draft-{saved.version}"


def test_a_signed_exam_reads_as_its_latest_revision_and_keeps_every_one(
        app, client, kb, form, validator) -> None:
    patient = _patient(app)
    exam = _sign(app, kb, _draft(app, form, patient), patient, MAY)
    first = client.get(f"{QR}/{exam.id}")
    qr = _ok(first, validator)
    assert (qr["status"], qr["meta"]["versionId"], first.headers["ETag"]) == \
        ("completed", "1", 'W/"1"')
    assert qr["authored"] == "2026-05-01T09:00:00+00:00"
    assert qr["meta"]["lastUpdated"] == "2026-05-01T09:00:00.000Z"

    # an amendment in progress is not shown: revision 1 stays current until signed
    exam = _begin_amendment(app, form, exam, patient)
    assert _ok(client.get(f"{QR}/{exam.id}"), validator) == qr
    exam = _sign(app, kb, exam, patient, JUNE, AMENDED)

    current = client.get(f"{QR}/{exam.id}")
    amended = _ok(current, validator)
    assert (amended["status"], amended["meta"]["versionId"], current.headers["ETag"]) == \
        ("amended", "2", 'W/"2"')
    assert _angle(amended) == 55
    old = client.get(f"{QR}/{exam.id}/_history/1")
    assert old.headers["ETag"] == 'W/"1"'
    assert _ok(old, validator) == qr and _angle(qr) == 40
    assert _ok(client.get(f"{QR}/{exam.id}/_history/2"), validator) == amended
    for missing in ("3", "01", "0", "draft-1", "x" * 70):
        _refused(client.get(f"{QR}/{exam.id}/_history/{missing}"), validator, 404,
                 "version")

    history = _ok(client.get(f"{QR}/{exam.id}/_history"), validator)
    assert (history["type"], history["total"]) == ("history", 2)
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]
    assert [e["response"]["status"] for e in history["entry"]] == ["200 OK", "201 Created"]
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    assert {e["fullUrl"] for e in history["entry"]} == {f"{BASE}/QuestionnaireResponse/{exam.id}"}
    assert history["entry"][1]["resource"] == qr


@pytest.mark.parametrize("path", [
    f"{QR}/{uuid.uuid4()}", f"{QR}/not-an-id", f"{QR}/{uuid.uuid4()}/_history",
    f"{QR}/{uuid.uuid4()}/_history/1", f"/fhir/Patient/{uuid.uuid4()}", "/fhir/Patient/nope",
])
def test_unknown_ids_are_404_operation_outcomes(client, validator, path) -> None:
    _refused(client.get(path), validator, 404, "is not known to this server")


# --- search ---------------------------------------------------------------------------------

def test_search_by_patient_status_and_authored(make_app, database_url, kb, form,
                                               validator) -> None:
    """On SQLite and on PostgreSQL: the same answers."""
    app = make_app({"DATABASE_URL": database_url})
    client = app.test_client()
    ana, rui = _patient(app, "Silva", "MRN-1"), _patient(app, "Costa", "MRN-2")
    march = _sign(app, kb, _draft(app, form, ana), ana, MARCH)            # completed
    june = _amended(app, kb, form, _sign(app, kb, _draft(app, form, ana), ana, MAY), ana,
                    JUNE)                                                 # amended
    draft = _draft(app, form, rui)                                        # in-progress, now

    def found(query: str) -> list[str]:
        bundle = _ok(client.get(f"{QR}?{query}"), validator)
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
    page = _ok(client.get(f"{QR}?patient={ana.id}&_count=1"), validator)
    assert (page["total"], _ids(page)) == (2, [june.id])
    links = {link["relation"]: link["url"] for link in page["link"]}
    assert links["self"].startswith(f"{BASE}/QuestionnaireResponse?patient={ana.id}")
    following = _ok(client.get(links["next"].removeprefix("http://localhost")), validator)
    assert (following["total"], _ids(following)) == (2, [march.id])
    assert "next" not in {link["relation"] for link in following["link"]}
    summary = _ok(client.get(f"{QR}?_count=0"), validator)
    assert (summary["total"], "entry" in summary) == (3, False)


def test_unknown_parameters_are_refused_unless_lenient(app, client, form, validator) -> None:
    patient = _patient(app)
    exam = _draft(app, form, patient)
    for query in ("_sort=-authored", "status:not=completed", "questionnaire=x",
                  f"patient={patient.id}&identifier=x"):
        _refused(client.get(f"{QR}?{query}"), validator, 400, "Unsupported search parameter")
    lenient = client.get(f"{QR}?_sort=-authored&patient={patient.id}",
                         headers={"Prefer": "handling=lenient"})
    bundle = _ok(lenient, validator)
    assert (bundle["total"], _ids(bundle)) == (1, [exam.id])
    warning = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert "_sort" in warning[0]["resource"]["issue"][0]["details"]["text"]
    assert "_sort" not in bundle["link"][0]["url"]  # self shows what was applied
    strict = client.get(f"{QR}?_sort=-authored", headers={"Prefer": "handling=strict"})
    _refused(strict, validator, 400, "Unsupported search parameter(s): _sort")
    _refused(client.get(f"{QR}/{exam.id}/_history?_since=2026-01-01"), validator, 400,
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
    _refused(client.get(f"{QR}?{query}"), validator, 400, text)


def test_metadata_lists_the_stored_record_interactions(client, validator) -> None:
    statement = _ok(client.get("/fhir/metadata"), validator)
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
