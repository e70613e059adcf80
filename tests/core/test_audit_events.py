"""The AuditEvent builders say what BALP (and, for sign-in, FHIR's examples) ask for."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from plugin.core import audit_events as ae
from plugin.core.outcome import simple

WHEN = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)
ANN = ae.Actor("alee", "Dr Ann Lee", "u-1", "clinician")


def _codes(concept_or_coding):
    codings = concept_or_coding.get("coding", [concept_or_coding])
    return [(c["system"].rsplit("/", 1)[-1], c["code"]) for c in codings]


@pytest.mark.parametrize(("interaction", "action", "user", "client", "server"), [
    ("create", "C", "AUT", "110153", "110152"),
    ("read", "R", "IRCP", "110152", "110153"),
    ("vread", "R", "IRCP", "110152", "110153"),
    ("update", "U", "AUT", "110153", "110152"),
    ("search-type", "E", "IRCP", "110153", "110152"),
])
def test_rest_events_follow_the_balp_table(interaction, action, user, client, server) -> None:
    event = ae.rest(interaction, actor=ANN, address="10.1.2.3", recorded=WHEN,
                    resource="QuestionnaireResponse/e-1" if interaction != "search-type"
                    else "Observation", patient_id="p-1", query="patient=p-1")
    assert _codes(event["type"]) == [("audit-event-type", "rest")]
    assert _codes(event["subtype"][0]) == [("restful-interaction", interaction)]
    assert (event["action"], event["outcome"], event["recorded"]) == \
        (action, "0", "2026-12-06T10:00:00.000Z")
    person, app, this = event["agent"]
    assert _codes(person["type"])[0][1] == user and person["requestor"] is True
    assert person["who"] == {"identifier": {"system": ae.USER_SYSTEM, "value": "alee"},
                             "reference": "Practitioner/u-1", "display": "Dr Ann Lee"}
    assert person["network"] == {"address": "10.1.2.3", "type": "2"}
    assert _codes(app["type"])[0][1] == client and _codes(this["type"])[0][1] == server
    patient, data = event["entity"]
    assert patient["what"] == {"reference": "Patient/p-1"}
    assert (_codes(patient["type"]), _codes(patient["role"])) == \
        ([("audit-entity-type", "1")], [("object-role", "1")])
    if interaction == "search-type":
        assert _codes(data["role"]) == [("object-role", "24")] and "what" not in data
        assert base64.b64decode(data["query"]) == b"patient=p-1"
    else:
        assert data["what"] == {"reference": "QuestionnaireResponse/e-1"}
        assert _codes(data["role"]) == [("object-role", "4")]


def test_a_failure_carries_its_outcome_and_operation_outcome() -> None:
    answered = simple("error", "forbidden", "Only clinicians sign.")
    event = ae.rest("update", actor=ANN, address=None, recorded=WHEN,
                    resource="QuestionnaireResponse/e-1", patient_id="p-1",
                    failure=ae.Failure(ae.SERIOUS_FAILURE, answered))
    assert (event["outcome"], event["outcomeDesc"]) == ("8", "Only clinicians sign.")
    detail = event["entity"][-1]["detail"][0]
    assert detail["type"] == "OperationOutcome"
    assert json.loads(base64.b64decode(detail["valueBase64Binary"])) == answered
    assert "network" not in event["agent"][0]


def test_login_logout_and_lockout_are_user_authentication_and_security_alerts() -> None:
    login = ae.login(username="alee", actor=ANN, address="::1", recorded=WHEN)
    assert (_codes(login["type"]), _codes(login["subtype"][0]), login["action"]) == \
        ([("DCM", "110114")], [("DCM", "110122")], "E")
    assert _codes(login["agent"][0]["type"]) == [("extra-security-role-type", "humanuser")]
    logout = ae.logout(actor=ANN, address="::1", recorded=WHEN)
    assert _codes(logout["subtype"][0]) == [("DCM", "110123")]
    failed = ae.login(username="who?", actor=None, address="::1", recorded=WHEN,
                      failure=ae.Failure(ae.MINOR_FAILURE, simple("error", "login", "No.")))
    assert failed["outcome"] == "4"
    assert failed["agent"][0]["who"] == {"identifier": {"system": ae.USER_SYSTEM,
                                                        "value": "who?"}}
    locked = ae.lockout(username="alee", address="::1", recorded=WHEN,
                        until=WHEN + dt.timedelta(minutes=15))
    assert _codes(locked["type"]) == [("DCM", "110113")]
    assert "2026-12-06T10:15:00.000Z" in locked["entity"][0]["description"]


def test_delivery_is_an_export_to_the_ehr() -> None:
    event = ae.delivery(ehr_base="https://ehr.example.org/fhir", resource="Provenance/x",
                        patient_id="p-1", recorded=WHEN)
    assert _codes(event["type"]) == [("DCM", "110106")] and event["action"] == "R"
    assert event["agent"][1]["network"] == {"address": "ehr.example.org", "type": "2"}


def test_an_unknown_interaction_or_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown interaction"):
        ae.rest("history", actor=ANN, address=None, recorded=WHEN)
    with pytest.raises(ValueError, match="timezone"):
        ae.logout(actor=ANN, address=None, recorded=WHEN.replace(tzinfo=None))
