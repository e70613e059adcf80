"""What the identity work emits validates under fhir.resources AND the independent
validator: every kind of AuditEvent the builders make (success and failure), the
Practitioner, and a signed record's Provenance with its complete Signature."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from plugin.core import audit_events as ae, practitioner, signature
from plugin.record import signoff
from plugin.core.outcome import simple
from tests.support.conformance import assert_conformant

WHEN = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
ANN = ae.Actor("alee", "Dr Ann Lee", "u-1", "clinician")
ADMIN = ae.Actor("root", "Pat Admin", None, "admin")
DENIED = ae.Failure(ae.SERIOUS_FAILURE, simple("error", "forbidden", "Only clinicians sign."))
CASE = Path(__file__).resolve().parent.parent / "data" / "cases"


EVENTS = {
    **{f"rest-{i}": ae.rest(i, actor=ANN, address="10.0.0.7", recorded=WHEN,
                            resource="QuestionnaireResponse/e-1", patient_id="p-1")
       for i in ae.REST if i != "search-type"},
    "rest-read-no-patient": ae.rest("read", actor=ANN, address="10.0.0.7", recorded=WHEN,
                                    resource="Questionnaire/posterior-thigh-exam"),
    "rest-search": ae.rest("search-type", actor=ANN, address="::1", recorded=WHEN,
                           resource="Observation", patient_id="p-1",
                           query="patient=p-1&code=http://loinc.org|8302-2"),
    "rest-read-failed": ae.rest("read", actor=ANN, address="10.0.0.7", recorded=WHEN,
                                resource="QuestionnaireResponse/e-1", patient_id="p-1",
                                failure=DENIED),
    "rest-no-user": ae.rest("read", actor=None, address="10.0.0.9", recorded=WHEN,
                            resource="Patient/p-1", patient_id="p-1", client="EHR"),
    "login": ae.login(username="alee", actor=ANN, address="10.0.0.7", recorded=WHEN),
    "login-failed": ae.login(username="nobody", actor=None, address="10.0.0.7", recorded=WHEN,
                             failure=ae.Failure(ae.MINOR_FAILURE, simple(
                                 "error", "login", "Wrong username or password."))),
    "logout": ae.logout(actor=ANN, address="10.0.0.7", recorded=WHEN),
    "lockout": ae.lockout(username="alee", address="10.0.0.7", recorded=WHEN,
                          until=WHEN + dt.timedelta(minutes=15)),
    "user-add": ae.user_administration("add", username="blee", actor=ADMIN,
                                       address="10.0.0.2", recorded=WHEN),
    "user-role-cli": ae.user_administration("role", username="blee", actor=None,
                                            address=None, recorded=WHEN),
    "delivery": ae.delivery(ehr_base="https://ehr.example.org/fhir",
                            resource="QuestionnaireResponse/e-1", patient_id="p-1",
                            recorded=WHEN),
    "delivery-failed": ae.delivery(ehr_base="https://ehr.example.org/fhir",
                                   resource="QuestionnaireResponse/e-1", patient_id=None,
                                   recorded=WHEN, failure=ae.Failure(ae.MAJOR_FAILURE, simple(
                                       "error", "exception", "HTTP 503"))),
    "rest-api-client": ae.rest("search-type", actor=ae.client_actor("c-1", "Lab integrator"),
                               address="10.0.0.9", recorded=WHEN, resource="Observation",
                               patient_id="p-1", query="patient=p-1"),
    "rest-api-client-denied": ae.rest("read", actor=ae.client_actor("c-1", "Lab integrator"),
                                      address="10.0.0.9", recorded=WHEN,
                                      resource="Patient/p-1", failure=DENIED),
    "rest-token-refused": ae.rest("search-type", actor=None, address="203.0.113.9",
                                  recorded=WHEN, resource="Observation", query="patient=p-1",
                                  client="unknown client", failure=ae.Failure(
                                      ae.SERIOUS_FAILURE, simple(
                                          "error", "login", "The access token is unknown, "
                                          "expired or revoked."))),
    "access-token": ae.access_token(client_id="c-1", client_name="Lab integrator",
                                    address="10.0.0.9", recorded=WHEN,
                                    scope="system/Observation.rs"),
    "access-token-refused": ae.access_token(
        client_id="unknown", client_name=None, address="10.0.0.9", recorded=WHEN,
        failure=ae.Failure(ae.MINOR_FAILURE, simple("error", "security",
                                                    "invalid_client: unknown issuer"))),
}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_audit_event_kind_conforms(validator, name) -> None:
    assert_conformant(validator, EVENTS[name])


def test_the_practitioner_conforms(validator) -> None:
    assert_conformant(validator, practitioner.build(
        "u-1", "Dr Ann Lee", "http://hl7.org/fhir/sid/us-npi|1234567893"))
    assert_conformant(validator, practitioner.build("u-2", "Sam Assistant"))
    assert_conformant(validator, practitioner.build(
        "u-3", "Dr Ann Lee", "http://hl7.org/fhir/sid/us-npi|1234567893",
        [("https://ehr.example.org/fhir", "dr-lee")]))


def test_a_signed_provenance_conforms(kb, validator) -> None:
    case = json.loads(sorted(CASE.glob("*.json"))[0].read_text())
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    signer = signoff.Signer("Dr Ann Lee", "Practitioner/u-1",
                            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
                            signoff.Attestation("alee", WHEN, key))
    signed = signoff.sign(kb, case["answers"], record_id="exam-1",
                          patient=dict(case["patient"], id="p-1"), signer=signer,
                          signed_at=WHEN, revision=1)
    element = signed.provenance["signature"][0]
    assert_conformant(validator, signed.response)
    assert_conformant(validator, signed.provenance)
    assert signature.verify(signed.response, element, {"keys": [key.as_dict(private=False)]})
