"""The FHIR API as an integrator uses it: definitions, metadata, $extract, and errors.

Every refusal must be an OperationOutcome that says what was wrong (naming the linkId
when an answer is at fault), with a 4xx status: bad input never produces a 500.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.config import DEFAULTS
from plugin.core.fhir_models import validate
from plugin.errors import AnswerError
from tests.support import fhir_http
from tests.support.bundles import of_type as _of_type
from tests.support.signin import signed_in

Q_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
EXTRACT = "/fhir/QuestionnaireResponse/$extract"
FHIR_JSON = fhir_http.FHIR_JSON
ANSWERS = {"slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee",
           "history.onset": "sudden", "history.pop": True}
PATIENT = {"resourceType": "Patient", "id": "p-7", "birthDate": "1990-06-01"}
#: The body limit of the app under the error table: small, so a 413 is cheap to provoke.
SMALL_LIMIT = 4096


_ok = fhir_http.ok
_returned = fhir_http.returned  # the Bundle in an $extract answer


def _params(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def _qr(**changes: Any) -> dict[str, Any]:
    qr = {"resourceType": "QuestionnaireResponse", "questionnaire": f"{Q_URL}|1.0.0",
          "status": "completed", "authored": "2026-11-21T10:00:00+01:00",
          "item": [{"linkId": "slr", "item": [{"linkId": "slr.left", "item": [
              {"linkId": "slr.left.onset-angle", "answer": [{"valueInteger": 40}]}]}]}]}
    qr.update(changes)
    return qr


def _response_part(resource: Any) -> dict[str, Any]:
    return {"name": "questionnaire-response", "resource": resource}


# --- definitions and metadata ------------------------------------------------------------

def test_metadata_says_r4_and_lists_exactly_what_is_served(client) -> None:
    response = client.get("/fhir/metadata")
    statement = _ok(response)
    assert validate(statement) == []
    assert statement["resourceType"] == "CapabilityStatement"
    assert (statement["fhirVersion"], statement["kind"], statement["status"]) == \
        ("4.0.1", "instance", "active")
    assert statement["implementation"]["url"] == "http://localhost/fhir"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"Questionnaire", "CodeSystem", "StructureDefinition",
                              "QuestionnaireResponse", "Patient", "Observation",
                              "Practitioner", "AuditEvent"}
    for definition in ("Questionnaire", "CodeSystem", "StructureDefinition"):
        assert [i["code"] for i in resources[definition]["interaction"]] == \
            ["read", "search-type"]
        assert [p["name"] for p in resources[definition]["searchParam"]] == ["url", "version"]
    operation, assess = resources["QuestionnaireResponse"]["operation"]
    assert operation["name"] == "extract"
    assert operation["definition"] == \
        "http://hl7.org/fhir/uv/sdc/OperationDefinition/QuestionnaireResponse-extract"
    assert f"{Q_URL}|1.0.0" in operation["documentation"]
    assert assess["name"] == "assess" and "suggestion" in assess["documentation"].lower()


def test_metadata_lists_exactly_the_routes_the_app_serves(app, client) -> None:
    """Every /fhir route is in the CapabilityStatement and everything it lists is routed:
    GET type = search-type, GET id = read, .../_history = history-instance, .../_history/vid
    = vread, POST $op at type or instance level = operation."""
    routed: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if not path.startswith("/fhir/") or path == "/fhir/metadata" \
                or path.startswith("/fhir/.well-known/"):  # SMART discovery, not FHIR
            continue
        segments = path.removeprefix("/fhir/").split("/")
        resource_type, rest = segments[0], segments[1:]
        if rest and rest[-1].startswith("$"):
            assert rule.methods is not None and "POST" in rule.methods, path
            routed.add((resource_type, rest[-1]))
            continue
        assert rule.methods is not None and "GET" in rule.methods, path
        kind = {0: "search-type", 1: "read"}.get(len(rest)) or \
            ("history-instance" if rest[-1] == "_history" else "vread")
        routed.add((resource_type, kind))
    statement = _ok(client.get("/fhir/metadata"))
    listed = {(r["type"], i["code"]) for r in statement["rest"][0]["resource"]
              for i in r.get("interaction", [])}
    listed |= {(r["type"], f"${o['name']}") for r in statement["rest"][0]["resource"]
               for o in r.get("operation", [])}
    assert routed == listed
    # each search-type lists its parameters, the operations their canonical definitions
    for resource in statement["rest"][0]["resource"]:
        codes = [i["code"] for i in resource["interaction"]]
        assert ("searchParam" in resource) == ("search-type" in codes), resource["type"]
        for operation in resource.get("operation", []):
            assert operation["definition"].startswith("http"), operation


def test_metadata_names_smart_security_and_the_scope_of_each_route(client) -> None:
    statement = _ok(client.get("/fhir/metadata"))
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert security["extension"] == [{
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [{"url": "token", "valueUri": "http://localhost/auth/token"}]}]
    docs = {r["type"]: r.get("documentation", "") for r in statement["rest"][0]["resource"]}
    assert "$extract needs system/QuestionnaireResponse.c" in docs["QuestionnaireResponse"]
    assert "$assess needs system/QuestionnaireResponse.c" in docs["QuestionnaireResponse"]
    assert "search needs system/Observation.s; read needs system/Observation.r" in \
        docs["Observation"]
    assert "$populate needs system/Patient.r" in docs["Questionnaire"]
    assert "search needs system/AuditEvent.s" in docs["AuditEvent"]


def test_metadata_uses_the_configured_base_url(make_app) -> None:
    client = signed_in(make_app({"FHIR_BASE_URL": "https://exam.example.org/fhir/"}))
    assert client.get("/fhir/metadata").get_json()["implementation"]["url"] == \
        "https://exam.example.org/fhir"


def test_questionnaire_read_returns_the_file_as_loaded(client) -> None:
    path = Path(DEFAULTS["QUESTIONNAIRES_DIR"]) / "posterior-thigh-exam.json"
    response = client.get("/fhir/Questionnaire/posterior-thigh-exam")
    assert _ok(response) == json.loads(path.read_text(encoding="utf-8"))


PROM_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/"
PUBLISHED = {"posterior-thigh-exam", "posterior-thigh-follow-up", "lefs", "psfs",
             "keele-start-back"}


@pytest.mark.parametrize(("query", "ids"), [
    ("", PUBLISHED), (f"url={Q_URL}", {"posterior-thigh-exam"}),
    (f"url={Q_URL}|1.0.0", {"posterior-thigh-exam"}), (f"url={Q_URL}|9.9", set()),
    ("url=http://example.org/other", set()), ("version=1.0.0", PUBLISHED), ("version=2", set()),
    (f"url={Q_URL}&_format=json", {"posterior-thigh-exam"}),
    (f"url={PROM_URL}posterior-thigh-follow-up|1.0.0", {"posterior-thigh-follow-up"}),
    (f"url={PROM_URL}lefs", {"lefs"}), (f"url={PROM_URL}keele-start-back|1.0.0",
                                       {"keele-start-back"}),
])
def test_questionnaire_search_by_canonical(client, query: str, ids: set[str]) -> None:
    found = _ok(client.get(f"/fhir/Questionnaire?{query}"))
    assert validate(found) == []
    entries = found.get("entry", [])  # none at all when empty: FHIR JSON has no empty arrays
    assert (found["type"], found["total"], len(entries)) == ("searchset", len(ids), len(ids))
    assert {e["resource"]["id"] for e in entries} == ids
    for entry in entries:
        id_ = entry["resource"]["id"]
        assert entry["fullUrl"] == f"http://localhost/fhir/Questionnaire/{id_}"
        assert entry["search"] == {"mode": "match"}
        assert entry["resource"]["url"] == (Q_URL if id_ == "posterior-thigh-exam"
                                            else PROM_URL + id_)


@pytest.mark.parametrize("id_", ["lefs", "psfs", "keele-start-back"])
def test_each_prom_is_published_as_loaded_with_its_copyright(client, id_: str) -> None:
    """A renderer fetches the instrument from us; the licence requires its copyright."""
    path = Path(DEFAULTS["QUESTIONNAIRES_DIR"]) / f"{id_}.json"
    served = _ok(client.get(f"/fhir/Questionnaire/{id_}"))
    assert served == json.loads(path.read_text(encoding="utf-8"))
    assert served["copyright"]


def test_code_system_read_and_search(client) -> None:
    found = _ok(client.get("/fhir/CodeSystem"))
    ids = {e["resource"]["id"] for e in found["entry"]}
    assert found["total"] == len(ids) and {"exam-answers", "exam-tests"} <= ids
    tests = _ok(client.get("/fhir/CodeSystem/exam-tests"))
    assert any(c["code"] == "slr.onset-angle" for c in tests["concept"])
    by_url = _ok(client.get(f"/fhir/CodeSystem?url={tests['url']}"))
    assert [e["fullUrl"] for e in by_url["entry"]] == \
        ["http://localhost/fhir/CodeSystem/exam-tests"]


# --- $extract ----------------------------------------------------------------------------

def test_extract_plain_answers(client) -> None:
    bundle = _returned(client.post(EXTRACT, json=ANSWERS))
    assert bundle["type"] == "transaction"
    assert all(e["request"]["method"] == "POST" and e["request"]["ifNoneExist"]
               for e in bundle["entry"])
    observations = _of_type(bundle, "Observation")
    assert len(observations) >= 2
    angle = next(o for o in observations
                 if o["identifier"][0]["value"].endswith("/slr.left.onset-angle"))
    assert angle["valueQuantity"] == {"value": 40, "unit": "°",
                                      "system": "http://unitsofmeasure.org", "code": "deg"}


def test_extract_sdc_parameters_is_repeatable(client) -> None:
    """The same record sent again gives the same conditional creates: nothing duplicates."""
    first = _returned(client.post(EXTRACT, json=_params(_response_part(_qr()))))
    again = _returned(client.post(EXTRACT, data=json.dumps(_params(_response_part(_qr()))),
                                  content_type=FHIR_JSON))
    assert _of_type(first, "Observation")
    assert [e["request"] for e in again["entry"]] == [e["request"] for e in first["entry"]]
    assert first["entry"][0]["resource"]["authored"] == "2026-11-21T10:00:00+01:00"


def test_extract_a_bare_questionnaire_response(client) -> None:
    bundle = _returned(client.post(EXTRACT, json=_qr()))
    assert len(_of_type(bundle, "Observation")) == 1


def test_a_loaded_questionnaire_parameter_is_accepted(client) -> None:
    """SDC's optional 'questionnaire' input: fine when it is the one loaded (any version
    spelling), refused otherwise (see the error table)."""
    for questionnaire in ({"resourceType": "Questionnaire", "url": Q_URL, "status": "active"},
                          {"resourceType": "Questionnaire", "url": Q_URL, "version": "1.0.0",
                           "status": "active"}):
        body = _params(_response_part(_qr()), {"name": "questionnaire",
                                               "resource": questionnaire})
        assert _of_type(_returned(client.post(EXTRACT, json=body)), "Observation")


def test_the_patient_parameter_sets_subject_and_age(client) -> None:
    body = _params(_response_part(ANSWERS), {"name": "patient", "resource": PATIENT})
    bundle = _returned(client.post(EXTRACT, json=body))
    qr, = _of_type(bundle, "QuestionnaireResponse")
    assert qr["subject"]["reference"] == "Patient/p-7"
    age = next(i for i in qr["item"] if i["linkId"] == "patient")["item"][0]
    today = dt.datetime.now(dt.timezone.utc).date()  # plain answers are authored "now"
    assert age["answer"] == [{"valueInteger": today.year - 1990 - (today < today.replace(
        month=6, day=1))}]  # born 1990-06-01
    assert {o["subject"]["reference"] for o in _of_type(bundle, "Observation")} == {"Patient/p-7"}


def test_nothing_to_extract_is_a_success_with_a_warning(client) -> None:
    parameters = _ok(client.post(EXTRACT, json={}))
    by_name = {p["name"]: p["resource"] for p in parameters["parameter"]}
    assert _of_type(by_name["return"], "Observation") == []
    issue, = by_name["issues"]["issue"]
    assert (issue["severity"], issue["code"]) == ("warning", "informational")
    assert "Nothing to extract" in issue["details"]["text"]


# --- errors ------------------------------------------------------------------------------

@pytest.fixture()
def small_client(make_app):
    """An app with a small body limit, so the table can include a 413."""
    return signed_in(make_app({"MAX_CONTENT_LENGTH": SMALL_LIMIT}))


def _deep(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return {"pain.current": value}


BAD = [
    # label, method, path, body (bytes or JSON), content type, status, text in the
    # outcome, linkId the outcome must name (None: not about one answer)
    ("malformed JSON", "POST", EXTRACT, b'{"slr.left.onset-angle": ', "application/json",
     400, "not valid JSON", None),
    ("empty body", "POST", EXTRACT, b"", "application/json", 400, "body is empty", None),
    ("JSON null", "POST", EXTRACT, b"null", "application/json", 400, "JSON null", None),
    ("absurdly deep JSON", "POST", EXTRACT, _deep(200), "application/json", 400,
     "deeper than 64 levels", None),
    ("deeper than the parser goes", "POST", EXTRACT, b"[" * 1500 + b"]" * 1500,
     "application/json", 400, "deeper than 64 levels", None),
    ("wrong resourceType", "POST", EXTRACT, {"resourceType": "Patient"}, FHIR_JSON, 400,
     "got 'Patient'", None),
    ("not a JSON object", "POST", EXTRACT, [1, 2], "application/json", 422,
     "Expected a JSON object", None),
    ("Parameters without a response", "POST", EXTRACT, _params(), FHIR_JSON, 400,
     "must contain 'questionnaire-response'", None),
    ("response part without a resource", "POST", EXTRACT,
     _params({"name": "questionnaire-response", "valueString": "{}"}), FHIR_JSON, 400,
     "must carry its content as a resource", None),
    ("parameter name that is not a string", "POST", EXTRACT,
     _params({"name": ["questionnaire-response"], "resource": _qr()}), FHIR_JSON, 400,
     "needs a name", None),
    ("unknown parameter", "POST", EXTRACT,
     _params(_response_part(_qr()), {"name": "questionaire", "resource": {}}), FHIR_JSON,
     400, "Unknown parameter 'questionaire'", None),
    ("repeated parameter", "POST", EXTRACT,
     _params(_response_part(_qr()), _response_part(_qr())), FHIR_JSON, 400,
     "only once", None),
    ("questionnaire not loaded", "POST", EXTRACT,
     _params(_response_part(_qr()), {"name": "questionnaire", "resource": {
         "resourceType": "Questionnaire", "url": "http://example.org/Questionnaire/x",
         "status": "active"}}),
     FHIR_JSON, 422, "Only Questionnaires loaded on this server", None),
    ("patient part that is no Patient", "POST", EXTRACT,
     _params(_response_part(ANSWERS), {"name": "patient", "resource": {
         "resourceType": "Practitioner"}}), FHIR_JSON, 400, "Expected a FHIR Patient", None),
    ("QR naming an unknown Questionnaire", "POST", EXTRACT,
     _params(_response_part(_qr(questionnaire="http://example.org/Questionnaire/x"))),
     FHIR_JSON, 422, "Unknown Questionnaire", None),
    ("QR still in progress", "POST", EXTRACT, _params(_response_part(_qr(status="in-progress"))),
     FHIR_JSON, 422, "must be completed", None),
    ("SLR angle out of range", "POST", EXTRACT, {"slr.left.onset-angle": 95},
     "application/json", 422, "between 0 and 90", "slr.left.onset-angle"),
    ("unknown linkId", "POST", EXTRACT, {"slr.left.angle": 40}, "application/json", 422,
     "Unknown linkId", "slr.left.angle"),
    ("answer to a disabled item", "POST", EXTRACT,
     {"history.onset": "gradual", "history.pop": True}, "application/json", 422,
     "applies only when history.onset = sudden", "history.pop"),
    ("wrong value type in a QR", "POST", EXTRACT, _params(_response_part(_qr(item=[
        {"linkId": "pain", "item": [{"linkId": "pain.current",
                                     "answer": [{"valueString": "5"}]}]}]))),
     FHIR_JSON, 422, "Expected valueInteger", "pain.current"),
    ("body over MAX_CONTENT_LENGTH", "POST", EXTRACT,
     {"history.onset": "sudden", "note": "x" * SMALL_LIMIT}, "application/json", 413,
     f"larger than this server accepts ({SMALL_LIMIT} bytes)", None),
    ("text/plain", "POST", EXTRACT, b"slr.left.onset-angle=40", "text/plain", 415,
     "Send JSON", None),
    ("no content type", "POST", EXTRACT, b"{}", None, 415, "without Content-Type", None),
    ("unknown route under /fhir", "GET", "/fhir/Nothing/here", None, None, 404, "not found",
     None),
    ("unknown Questionnaire id", "GET", "/fhir/Questionnaire/nope", None, None, 404,
     "Questionnaire/nope is not known", None),
    ("unknown CodeSystem id", "GET", "/fhir/CodeSystem/nope", None, None, 404,
     "CodeSystem/nope is not known", None),
    ("wrong method", "GET", EXTRACT, None, None, 405, "method is not allowed", None),
    ("unsupported search parameter", "GET", "/fhir/Questionnaire?name=x", None, None, 400,
     "Unsupported search parameter(s): name", None),
    ("format we do not serve", "GET", "/fhir/metadata?_format=xml", None, None, 406,
     "_format=xml is not served", None),
]


@pytest.mark.parametrize(("label", "method", "path", "body", "ctype", "status", "text",
                          "link_id"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_an_operation_outcome(small_client, label, method, path, body, ctype,
                                             status, text, link_id) -> None:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body)
    response = small_client.open(path, method=method, data=data, content_type=ctype)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert validate(outcome) == []
    assert all(i["severity"] == "error" and i["details"]["text"] for i in outcome["issue"])
    texts = " | ".join(i["details"]["text"] for i in outcome["issue"])
    assert text in texts
    if link_id:
        assert any(i["details"]["text"].startswith(f"{link_id}: ")
                   and i["expression"] == [
                       f"QuestionnaireResponse.repeat(item).where(linkId='{link_id}')"]
                   for i in outcome["issue"])


def test_every_answer_error_is_reported_at_once(client) -> None:
    response = client.post(EXTRACT, json={"slr.left.onset-angle": -5, "pain.current": 11,
                                          "history.onset": "slow", "red-flags.fever": "yes"})
    assert response.status_code == 422
    named = {i["details"]["text"].split(":")[0] for i in response.get_json()["issue"]}
    assert named == {"slr.left.onset-angle", "pain.current", "history.onset", "red-flags.fever"}


def test_extract_refuses_none_beside_another_option(client) -> None:
    """The QuestionnaireResponse runs through the same answers schema: "None" with
    "X-ray" is refused, naming the linkId, and nothing is extracted."""
    qr = _qr(item=[{"linkId": "history", "item": [{"linkId": "history.imaging", "answer": [
        {"valueCoding": {"system": "http://posterior-thigh-exam.org/fhir/CodeSystem/exam-answers",
                         "code": code}} for code in ("none", "xray")]}]}])
    response = client.post(EXTRACT, json=_params(_response_part(qr)))
    assert response.status_code == 422, response.get_data(as_text=True)
    outcome = response.get_json()
    assert validate(outcome) == []
    assert [i["details"]["text"] for i in outcome["issue"]] == [
        'history.imaging: "None" excludes every other answer; choose it '
        "alone or leave it out."]


def test_a_405_says_which_methods_are_allowed(client) -> None:
    assert "POST" in client.get(EXTRACT).headers["Allow"]


def test_errors_outside_fhir_are_not_operation_outcomes(make_app) -> None:
    """Pages for people (the tablet) keep ordinary HTML errors, with the right status."""
    app = make_app()

    def page() -> None:
        raise AnswerError({"pain.current": ["Expected a whole number."]})

    app.add_url_rule("/exam/page", "page", page)
    client = signed_in(app)
    for path, status in (("/no-such-page", 404), ("/exam/page", 422)):
        response = client.get(path)
        assert (response.status_code, response.mimetype) == (status, "text/html")


def test_an_unexpected_failure_is_a_500_outcome_that_logs_no_patient_data(caplog, make_app) -> None:
    app = make_app()

    def broken() -> None:
        raise ValueError("Ana Silva, born 1986-03-14")  # what a careless message might hold

    app.add_url_rule("/fhir/broken", "broken", broken, methods=["POST"])
    with caplog.at_level(logging.ERROR, logger="plugin.web.errors"):
        response = signed_in(app).post("/fhir/broken?name=Ana", json={"name": "Ana Silva"})
    assert response.status_code == 500
    issue, = response.get_json()["issue"]
    assert issue["code"] == "exception"
    assert "ValueError" in caplog.text and "/fhir/broken" in caplog.text
    assert "Ana" not in caplog.text and "1986" not in caplog.text


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                              max_size=4),
    max_leaves=20)
LINK_IDS = ["slr.left.onset-angle", "slr.left.response", "history.onset", "history.pop",
            "pain.current", "patient.age-years", "red-flags.fever", "history.duration"]


@st.composite
def _bodies(draw: Any) -> Any:
    """Anything a careless or hostile client might post: JSON of any shape, answers with
    values of any type, and QRs / Parameters with parts of any type."""
    kind = draw(st.sampled_from(["json", "answers", "qr", "parameters"]))
    if kind == "json":
        return draw(JSON_VALUES)
    if kind == "answers":
        return draw(st.dictionaries(st.sampled_from(LINK_IDS), JSON_VALUES, max_size=5))
    qr = _qr(**draw(st.dictionaries(
        st.sampled_from(["status", "item", "authored", "subject", "questionnaire", "id"]),
        JSON_VALUES, max_size=2)))
    if kind == "qr":
        return qr
    return _params(*draw(st.lists(st.fixed_dictionaries({
        "name": st.sampled_from(["questionnaire-response", "questionnaire", "patient"])
        | JSON_VALUES,
        "resource": st.just(qr) | JSON_VALUES}), max_size=3)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies())
def test_no_input_ever_yields_a_500(app, body: Any) -> None:
    response = signed_in(app).post(EXTRACT, data=json.dumps(body),
                                      content_type="application/json")
    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)
    result = response.get_json()
    assert result["resourceType"] == ("Parameters" if response.status_code == 200
                                      else "OperationOutcome")
