"""The breakages found by attacking the service (issue 13), one regression test each.

Each is what an attacker or a buggy integrator sent and what used to happen (a 500, a
traceback, a page that could never open again); each must now be a clear refusal
naming where the problem is, and nothing stored. The same inputs through the real
gunicorn (sizes, chunked bodies, logs) are in ``test_served_boundary.py``.
"""
from __future__ import annotations

import json
import math
import io
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws

from plugin import knowledge
from plugin.adapters import store as store_mod
from tests.support import cds, tablet
from tests.support.cds import PATIENT_VIEW
from tests.support.jwt_keys import CdsClient
from tests.support.cli import run, write
from tests.support.signin import signed_in

Q_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
EXTRACT = "/fhir/QuestionnaireResponse/$extract"
ASSESS = "/fhir/QuestionnaireResponse/$assess"
POPULATE = "/fhir/Questionnaire/$populate"
PATIENT = {"resourceType": "Patient", "id": "p-7", "birthDate": "1990-06-01"}


def _qr(answer: Any = None, *, item: Any = None) -> dict[str, Any]:
    """A completed response whose SLR response answer (a choice) is ``answer``."""
    slr_item: Any = {"linkId": "slr.left.response",
                     "answer": [answer if answer is not None else {"valueCoding": {
                         "system": "http://posterior-thigh-exam.org/fhir/CodeSystem/exam-answers",
                         "code": "leg-pain-below-knee"}}]}
    return {"resourceType": "QuestionnaireResponse", "questionnaire": f"{Q_URL}|1.0.0",
            "status": "completed", "authored": "2026-11-21T10:00:00+01:00",
            "item": [{"linkId": "slr", "item": [{"linkId": "slr.left", "item": [
                item if item is not None else slr_item]}]}]}


def _with_patient(qr: Any, patient: Any = PATIENT) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": qr},
        {"name": "patient", "resource": patient}]}


def _outcome(response: Any, status: int, where: str | None = None) -> dict[str, Any]:
    """The OperationOutcome of a refusal with ``status``; ``where`` must appear in one
    issue's expression."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    if where is not None:
        found = [e for i in body["issue"] for e in i.get("expression", [])]
        assert any(where in e for e in found), body
    return body


# --- 1. wrong JSON types inside an answer: $extract / $assess / the CLI -----------------

WRONG_TYPES = [
    ("valueCoding null", _qr({"valueCoding": None}), "valueCoding"),
    ("valueQuantity null", _qr({"valueQuantity": None}), "valueQuantity"),
    ("valueCoding a string", _qr({"valueCoding": "leg-pain-below-knee"}), "valueCoding"),
    ("an answer entry a string", _qr("leg-pain-below-knee"), "answer"),
    ("an item entry a string", _qr(item="slr.left.response"), "item"),
    ("a number as a string", _qr(item={"linkId": "slr.left.onset-angle",
                                       "answer": [{"valueInteger": "40"}]}), "valueInteger"),
    ("a boolean as a string", _qr(item={"linkId": "slr.left.crossed-pain",
                                        "answer": [{"valueBoolean": "true"}]}), "valueBoolean"),
]


@pytest.mark.parametrize("path", [EXTRACT, ASSESS])
@pytest.mark.parametrize("label, qr, where", WRONG_TYPES, ids=[w[0] for w in WRONG_TYPES])
def test_1_a_wrong_json_type_in_an_answer_is_a_400_naming_it(client, path, label, qr,
                                                             where) -> None:
    body = _outcome(client.post(path, json=_with_patient(qr),
                                content_type="application/fhir+json"), 400, where)
    assert any(e.startswith("QuestionnaireResponse.item[0].item[0].item[0]")
               for i in body["issue"] for e in i["expression"]), body


@pytest.mark.parametrize("label, qr, where", WRONG_TYPES[:5], ids=[w[0] for w in WRONG_TYPES[:5]])
def test_1_the_cli_says_so_in_a_line_and_exits_1(tmp_path: Path, label, qr, where) -> None:
    result = run("extract", write(tmp_path, "qr.json", qr))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert where in result.stderr and "not valid FHIR R4" in result.stderr


def test_1_values_are_never_coerced(client) -> None:
    """fhir.resources would read "40" as 40; the README promises it is refused."""
    qr = _qr(item={"linkId": "slr.left.onset-angle", "answer": [{"valueInteger": "40"}]})
    body = _outcome(client.post(EXTRACT, json=qr), 400, "valueInteger")
    assert "must be a whole JSON number, not a string" in json.dumps(body)


# --- 2. lone surrogates -----------------------------------------------------------------

SURROGATE = "\ud800"


def _raw(value: Any) -> bytes:
    """JSON as a client sends it: json.dumps writes a lone surrogate as ``\\ud800``."""
    return json.dumps(value).encode("ascii")


@pytest.mark.parametrize("label, path, body, where", [
    ("a nested resourceType", EXTRACT, {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": {"resourceType": SURROGATE}}]},
     "resourceType"),
    ("a Patient's given name to $extract", EXTRACT,
     _with_patient(_qr(), {**PATIENT, "name": [{"given": [SURROGATE]}]}), "given"),
    ("a Patient's given name to $populate", POPULATE, {
        "resourceType": "Parameters", "parameter": [
            {"name": "subject", "valueReference": {"reference": "Patient/p-7"}},
            {"name": "context", "part": [
                {"name": "name", "valueString": "patient"},
                {"name": "content",
                 "resource": {**PATIENT, "name": [{"given": ["A" + SURROGATE]}]}}]},
        ]}, "given"),
    ("a key", EXTRACT, {SURROGATE: 1}, None),
])
def test_2_a_lone_surrogate_is_a_400(client, label, path, body, where) -> None:
    body = _outcome(client.post(path, data=_raw(body), content_type="application/json"),
                    400, where)
    assert "surrogate" in json.dumps(body)


def test_2_a_nul_in_text_is_a_400_too(client) -> None:
    qr = _qr(item={"linkId": "history.notes", "answer": [{"valueString": "a\x00b"}]})
    body = _outcome(client.post(EXTRACT, data=_raw(qr), content_type="application/json"), 400)
    assert "NUL" in json.dumps(body)


# --- 3. a draft value of the wrong shape --------------------------------------------------

@pytest.fixture()
def tablet_app(make_app, database_url):
    app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})
    return app, signed_in(app)


def _begin(client) -> tuple[str, int]:
    response = client.post("/patients", data={"family": "Silva", "given": "Ana",
                                              "birth_date": "1986-03-14", "identifier": "M-1"})
    patient_id = response.headers["Location"].rsplit("/", 1)[-1]
    response = client.post(f"/patients/{patient_id}/exams")
    exam_id = response.headers["Location"].split("/")[2]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return exam_id, int(re.search(r'"version": (\d+)', page).group(1))


SITE = "palpation.ischial-tuberosity.left"  # a single-choice body-map site


@pytest.mark.parametrize("value", [["tender"], {}, [], True, 7, {"value": 1}])
def test_3_a_draft_value_of_the_wrong_shape_is_refused_and_nothing_stored(tablet_app,
                                                                         value) -> None:
    app, client = tablet_app
    exam_id, version = _begin(client)
    before = store_mod.from_app(app).exam(exam_id)
    response = client.put(f"/exams/{exam_id}/draft", headers={"If-Match": f'"{version}"'},
                          json={"section": "palpation", "answers": {SITE: value}})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert SITE in response.get_json()["errors"]
    after = store_mod.from_app(app).exam(exam_id)
    assert (after.version, after.answers) == (before.version, before.answers)
    assert client.get(f"/exams/{exam_id}/pages/palpation").status_code == 200


def test_3_out_of_range_and_typed_text_are_still_kept_and_flagged(tablet_app) -> None:
    app, client = tablet_app
    exam_id, version = _begin(client)
    response = client.put(f"/exams/{exam_id}/draft", headers={"If-Match": f'"{version}"'},
                          json={"section": "slr", "answers": {"slr.left.onset-angle": 400,
                                                              "slr.right.onset-angle": "4a"}})
    assert response.status_code == 200
    assert set(response.get_json()["errors"]) >= {"slr.left.onset-angle", "slr.right.onset-angle"}
    stored = store_mod.from_app(app).exam(exam_id).answers
    assert stored["slr.left.onset-angle"] == 400 and stored["slr.right.onset-angle"] == "4a"


def test_3_a_corrupt_stored_value_is_shown_as_a_problem_not_a_crash(tablet_app) -> None:
    """A value stored before this check (or by hand): every page still opens, says
    what to fix, and the next autosave of that page replaces it."""
    app, client = tablet_app
    exam_id, version = _begin(client)
    store = store_mod.from_app(app)
    record = store.exam(exam_id)
    form = app.extensions[knowledge.EXTENSION_KEY].form_for(record.questionnaire)
    corrupt = {**record.answers, SITE: ["tender", "x"], "slr.left.onset-angle": {}}
    saved = store.save_draft(exam_id, expected_version=record.version, answers=corrupt,
                             draft=tablet.draft_qr(form, exam_id,
                                                   store.patient(record.patient_id), {}))
    for path in ("pages/palpation", "pages/slr", "review"):
        response = client.get(f"/exams/{exam_id}/{path}")
        assert response.status_code == 200, path
    page = client.get(f"/exams/{exam_id}/pages/palpation").get_data(as_text=True)
    assert "cannot be shown here" in page
    fixed = client.put(f"/exams/{exam_id}/draft", headers={"If-Match": f'"{saved.version}"'},
                       json={"section": "palpation", "answers": {SITE: "tender"}})
    assert fixed.status_code == 200 and SITE not in fixed.get_json()["errors"]


# --- 4. CDS Hooks --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ehr() -> CdsClient:
    return CdsClient()


@pytest.fixture()
def cds_client(tmp_path, ehr):
    with cds.app_with(tmp_path, cds.settings(ehr)) as made:
        yield signed_in(made)


def _cds_refusal(response: Any, status: int) -> dict[str, Any]:
    """A refused CDS call's OperationOutcome (never HTML), with ``text`` (every issue's
    text) and ``where`` (the first issue's place) for the assertions."""
    assert response.status_code == status, response.get_data(as_text=True)
    code, text = cds.refusal(response)
    places = [e for i in response.get_json()["issue"] for e in i.get("expression", ())]
    return {"code": code, "text": text, "where": places[0] if places else None}


def test_4_a_cds_body_nested_1000_deep_is_a_400(cds_client, ehr) -> None:
    raw = json.dumps(cds.body("patient-view"))[:-1] + ', "deep": ' + '{"a": ' * 1000 + \
        "{}" + "}" * 1000 + "}"
    response = cds_client.post("/cds-services/posterior-thigh-patient-view", data=raw,
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {ehr.sign(PATIENT_VIEW)}"})
    assert "deeper than 64" in _cds_refusal(response, 400)["text"]


@pytest.mark.parametrize("claims", [{"exp": math.nan}, {"exp": math.inf}, {"iat": math.nan},
                                    {"jti": SURROGATE}, {"jti": "a\x00b"}])
def test_4_a_token_with_nan_exp_or_a_surrogate_jti_is_a_401(cds_client, ehr, claims) -> None:
    now = int(time.time())
    payload = {"iss": ehr.iss, "aud": PATIENT_VIEW, "iat": now, "exp": now + 60,
               "jti": str(uuid.uuid4()), **claims}
    # signed by the client's real key, so only the claims' content is at fault; written
    # as a client's JSON library writes them (NaN, \ud800 escapes)
    token = jws.serialize_compact({"alg": "RS384", "typ": "JWT", "kid": ehr.rsa.kid},
                                  json.dumps(payload).encode("ascii"), ehr.rsa,
                                  algorithms=["RS384"])
    response = cds.post(cds_client, ehr, PATIENT_VIEW, cds.body("patient-view"), token=token)
    assert "malformed token" in _cds_refusal(response, 401)["text"]


def test_4_a_surrogate_in_a_cds_body_is_a_400_naming_it(cds_client, ehr) -> None:
    token = ehr.sign(PATIENT_VIEW)
    body = cds.body("patient-view")
    body["hookInstance"] = SURROGATE
    response = cds_client.post("/cds-services/posterior-thigh-patient-view", data=_raw(body),
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {token}"})
    refusal = _cds_refusal(response, 400)
    assert refusal["where"] == "$.hookInstance"


# --- 5. NUL in a query parameter (PostgreSQL refuses NUL in text) -------------------------

@pytest.mark.parametrize("path", ["/patients?q=%00", "/patients?q=a%00b", "/patients?%00=1"])
def test_5_a_nul_in_a_query_is_a_400_on_every_backend(tablet_app, path) -> None:
    _, client = tablet_app
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


def test_5_a_nul_in_a_form_field_is_refused_before_the_database(tablet_app) -> None:
    app, client = tablet_app
    response = client.post("/patients", data={"family": "Sil\x00va", "birth_date": "1986-03-14"})
    assert response.status_code == 400
    assert store_mod.from_app(app).patients() == []


def test_5_under_fhir_it_is_an_operation_outcome_naming_the_parameter(client) -> None:
    _outcome(client.get("/fhir/QuestionnaireResponse?patient=%00"), 400, "patient")


# --- 7. chunked bodies over the limit (the app's side; gunicorn's in test_served_*) -------

def test_7_a_chunked_body_over_the_limit_is_a_413_not_cut(make_app) -> None:
    app = make_app({"MAX_CONTENT_LENGTH": 1000})
    client = signed_in(app)
    answers = json.dumps({"history.notes": "x" * 1200}).encode()
    response = client.post(EXTRACT, input_stream=io.BytesIO(answers),
                           headers={"Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    _outcome(response, 413)


def test_7_a_chunked_body_under_the_limit_is_read_whole(make_app) -> None:
    client = signed_in(make_app({"MAX_CONTENT_LENGTH": 1000}))
    body = json.dumps({"slr.left.onset-angle": 40}).encode()
    response = client.post(EXTRACT, input_stream=io.BytesIO(body),
                           headers={"Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 200, response.get_data(as_text=True)


# --- 8. the app's own size limits (beyond gunicorn's: test_served_boundary.py) ----------

def test_8_a_long_url_under_fhir_is_a_414_outcome(client) -> None:
    _outcome(client.get("/fhir/Questionnaire?url=" + "x" * 5000), 414)


def test_8_a_long_header_under_fhir_is_a_431_outcome(client) -> None:
    _outcome(client.get("/fhir/metadata", headers={"X-Big": "x" * 30_000}), 431)


def test_8_and_under_cds_hooks_its_own_error_json(cds_client) -> None:
    _cds_refusal(cds_client.get("/cds-services?x=" + "y" * 5000), 414)


def test_4_prefetched_findings_that_make_no_valid_exam_leave_only_the_launch_card(
        cds_client, ehr, kb) -> None:
    """Found by the fuzz tests: Observations whose answers break the Questionnaire's
    enableWhen (a follow-up without its question) gave a 422 HTML page; they are the
    EHR's data, not the caller's mistake, so the service answers without them."""
    data = cds.case("acute-hamstring-strain-sprinter")
    observations = cds.observations(kb, data)
    observations["entry"] = [e for e in observations["entry"]
                             if e["resource"]["code"]["coding"][0]["code"] != "history.onset"]
    body = cds.body("patient-view", data["patient"]["id"],
                    prefetch={"patient": data["patient"], "observations": observations})
    response = cds.post(cds_client, ehr, PATIENT_VIEW, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.get_json()["cards"]) == 1  # the launch card


# --- found by the fuzz tests ---------------------------------------------------------------

def test_a_quantity_answer_without_a_value_is_an_answer_error(client) -> None:
    qr = _qr(item=None)
    qr["item"] = [{"linkId": "history", "item": [{"linkId": "history.duration", "answer": [
        {"valueQuantity": {"system": "http://unitsofmeasure.org", "code": "wk"}}]}]}]
    body = _outcome(client.post(EXTRACT, json=qr), 422, "history.duration")
    assert "A quantity needs a value." in json.dumps(body)


@pytest.mark.parametrize("coding", [{"system": "http://loinc.org", "code": ["24968-0"]},
                                    {"system": {"x": 1}, "code": "24968-0"}])
def test_draft_orders_that_are_not_fhir_are_a_400_naming_the_place(cds_client, ehr,
                                                                   coding) -> None:
    body = cds.body("order-select", draftOrders=cds.orders(coding),
                    selections=["ServiceRequest/sr-0"])
    response = cds.post(cds_client, ehr, cds.MRI_ORDER, body)
    refusal = _cds_refusal(response, 400)
    assert refusal["where"].startswith(
        "context.draftOrders.entry[0].resource.code.coding[0]"), refusal


def test_an_unexpected_failure_under_cds_hooks_is_an_operation_outcome_not_html(
        cds_client, ehr, monkeypatch, caplog) -> None:
    from plugin.decision import cards

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Ana Silva")  # a message that might quote patient data

    monkeypatch.setattr(cards, "check_mri_order", broken)
    body = cds.body("order-select", draftOrders=cds.orders(), selections=[])
    response = cds.post(cds_client, ehr, cds.MRI_ORDER, body)
    assert _cds_refusal(response, 500)["code"] == "exception"
    assert "ValueError" in caplog.text and "Ana" not in caplog.text


@pytest.mark.parametrize("resource_type", [None, 7, "Nope", ["ServiceRequest"]])
def test_a_draft_order_of_no_resource_type_is_a_400(cds_client, ehr, resource_type) -> None:
    """Found by the fuzz tests: a nested resourceType null crashed the FHIR models."""
    orders = cds.orders(cds.LUMBAR_MRI)
    orders["entry"][0]["resource"]["resourceType"] = resource_type
    body = cds.body("order-select", draftOrders=orders, selections=["ServiceRequest/sr-0"])
    refusal = _cds_refusal(cds.post(cds_client, ehr, cds.MRI_ORDER, body), 400)
    assert refusal["where"] == \
        "context.draftOrders.entry[0].resource.resourceType", refusal
