"""The independent validator can pass and can fail.

Why: a conformance check that never fails proves nothing. Each known-bad resource below must be
reported (by fhir.resources, the independent validator, or both, as noted), and minimal valid
resources of every kind the product emits must pass both with zero errors.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.conformance import (IndependentValidator, Report, assert_conformant,
                                       fhir_resources_errors)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "slr-left",
    "status": "final",
    "category": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "exam"}]}],
    "code": {"coding": [{"system": LOINC, "code": "8867-4"}], "text": "Straight leg raise angle"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2024-05-01T10:15:00+02:00",
    "valueQuantity": {"value": 35, "unit": "deg", "system": UCUM, "code": "deg"},
}

QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": "exam",
    "url": "http://example.org/Questionnaire/exam",
    "status": "active",
    "item": [
        {"linkId": "intro", "type": "display", "text": "Posterior thigh exam"},
        {"linkId": "slr", "type": "group", "text": "Straight leg raise", "item": [
            {"linkId": "slr.left", "type": "integer", "text": "Left angle", "required": True},
            {"linkId": "slr.done", "type": "boolean", "text": "Done"},
            {"linkId": "slr.note", "type": "string", "text": "Note",
             "enableWhen": [{"question": "slr.done", "operator": "=", "answerBoolean": True}]},
        ]},
    ],
}

QUESTIONNAIRE_RESPONSE: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "id": "qr1",
    "questionnaire": "http://example.org/Questionnaire/exam",
    "status": "completed",
    "subject": {"reference": "Patient/p1"},
    "authored": "2024-05-01T10:20:00Z",
    "item": [{"linkId": "slr", "item": [
        {"linkId": "slr.left", "answer": [{"valueInteger": 35}]}]}],
}

BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [{
        "fullUrl": "urn:uuid:8f0b3c1e-2f4a-4c7e-9d6b-1a2b3c4d5e6f",
        "resource": {k: v for k, v in OBSERVATION.items() if k != "id"},
        "request": {"method": "POST", "url": "Observation"},
    }],
}

OPERATION_OUTCOME: dict[str, Any] = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Unknown linkId 'nope'",
               "expression": ["QuestionnaireResponse.item[0]"]}],
}


def changed(resource: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A deep copy of `resource` with top-level fields replaced (None removes the field)."""
    out = copy.deepcopy(resource)
    for name, value in fields.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def independent(validator: IndependentValidator, resource: dict[str, Any]) -> Report:
    return validator.validate(copy.deepcopy(resource))


def assert_reported(errors: tuple[str, ...] | list[str], *needles: str) -> None:
    text = "\n".join(errors)
    for needle in needles:
        assert needle in text, f"{needle!r} not reported in:\n{text}"


# --- passes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("resource", [OBSERVATION, QUESTIONNAIRE, QUESTIONNAIRE_RESPONSE, BUNDLE,
                                      OPERATION_OUTCOME],
                         ids=lambda r: r["resourceType"])
def test_minimal_valid_resources_pass_both_validators(validator, resource) -> None:
    report = assert_conformant(validator, copy.deepcopy(resource))
    assert report.errors == ()


# --- failures ----------------------------------------------------------------------------------

def test_missing_required_element(validator) -> None:
    bad = changed(OBSERVATION, code=None)
    assert_reported(independent(validator, bad).errors, "Observation.code: Missing required")
    assert_reported(fhir_resources_errors(bad), "code")
    with pytest.raises(AssertionError):
        assert_conformant(validator, bad)


def test_string_where_a_number_is_required(validator) -> None:
    """The LHC-Forms bug of shared/fhir.md §6.1; pydantic coerces "35", Medplum does not."""
    bad = changed(OBSERVATION, valueQuantity=dict(OBSERVATION["valueQuantity"], value="35"))
    assert_reported(independent(validator, bad).errors, "expected number")
    with pytest.raises(AssertionError, match="expected number"):
        assert_conformant(validator, bad)


def test_unknown_property(validator) -> None:
    bad = changed(OBSERVATION, valueText="35")
    assert_reported(independent(validator, bad).errors, 'Observation.valueText')
    with pytest.raises(AssertionError, match="valueText"):
        assert_conformant(validator, bad)


def test_code_outside_a_required_binding(validator) -> None:
    """fhir.resources accepts status "bogus": only the independent validator reports it."""
    bad = changed(OBSERVATION, status="bogus")
    assert_reported(independent(validator, bad).errors,
                    "Observation.status: code 'bogus' is not in required value set "
                    "http://hl7.org/fhir/ValueSet/observation-status")
    with pytest.raises(AssertionError, match="observation-status"):
        assert_conformant(validator, bad)


@pytest.mark.parametrize("path, resource", [
    ("Bundle.type", changed(BUNDLE, type="transactions")),
    ("Bundle.entry[0].request.method", changed(BUNDLE, entry=[
        dict(BUNDLE["entry"][0], request={"method": "SEND", "url": "Observation"})])),
    ("OperationOutcome.issue[0].severity", changed(OPERATION_OUTCOME, issue=[
        dict(OPERATION_OUTCOME["issue"][0], severity="bad")])),
    ("OperationOutcome.issue[0].code", changed(OPERATION_OUTCOME, issue=[
        dict(OPERATION_OUTCOME["issue"][0], code="oops")])),
    ("Questionnaire.item[1].item[2].enableWhen[0].operator", changed(QUESTIONNAIRE, item=[
        QUESTIONNAIRE["item"][0], dict(QUESTIONNAIRE["item"][1], item=[
            *QUESTIONNAIRE["item"][1]["item"][:2],
            dict(QUESTIONNAIRE["item"][1]["item"][2], enableWhen=[
                {"question": "slr.done", "operator": "==", "answerBoolean": True}])])])),
    ("QuestionnaireResponse.status", changed(QUESTIONNAIRE_RESPONSE, status="done")),
    ("Condition.clinicalStatus", {
        "resourceType": "Condition", "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "activ"}]}}),
], ids=lambda x: x if isinstance(x, str) else "")
def test_other_required_bindings(validator, path: str, resource: dict[str, Any]) -> None:
    assert_reported(independent(validator, resource).errors, f"{path}: ")


def test_duplicate_link_ids_que_2(validator) -> None:
    """Medplum does not report que-2 (shared/fhir.md §6.2): the fhirpath engine does."""
    bad = copy.deepcopy(QUESTIONNAIRE)
    bad["item"][1]["item"][1]["linkId"] = "slr.left"
    assert_reported(independent(validator, bad).errors, "que-2")
    with pytest.raises(AssertionError, match="que-2"):
        assert_conformant(validator, bad)


def test_group_without_children_que_1(validator) -> None:
    bad = changed(QUESTIONNAIRE, item=[{"linkId": "g", "type": "group", "text": "Empty"}])
    assert_reported(independent(validator, bad).errors, "Questionnaire.item[0]: Constraint que-1")
    with pytest.raises(AssertionError, match="que-1"):
        assert_conformant(validator, bad)


def test_required_display_item_que_6(validator) -> None:
    bad = changed(QUESTIONNAIRE, item=[
        {"linkId": "d", "type": "display", "text": "Read me", "required": True}])
    assert_reported(independent(validator, bad).errors, "Questionnaire.item[0]: Constraint que-6")
    with pytest.raises(AssertionError, match="que-6"):
        assert_conformant(validator, bad)


def test_invalid_entry_of_a_bundle_is_reported_with_its_index(validator) -> None:
    entry = copy.deepcopy(BUNDLE["entry"][0])
    bad_resource = changed(entry["resource"], code=None, status="bogus")
    bad = changed(BUNDLE, entry=[copy.deepcopy(entry), dict(entry, resource=bad_resource)])
    errors = independent(validator, bad).errors
    assert_reported(errors, "Bundle.entry[1].resource.code: Missing required",
                    "Bundle.entry[1].resource.status: code 'bogus'")
    assert not [e for e in errors if "entry[0]" in e], errors
    with pytest.raises(AssertionError, match=r"entry\[1\]"):
        assert_conformant(validator, bad)


def test_datetime_with_time_but_no_timezone(validator) -> None:
    """R4: a dateTime with a time SHALL have a timezone. fhir.resources rejects it; Medplum's
    own regex accepts it (shared/fhir.md §6.2), so validate.mjs applies the R4 regex itself."""
    bad = changed(OBSERVATION, effectiveDateTime="2024-05-01T10:15:00")
    assert_reported(fhir_resources_errors(bad), "effectiveDateTime")
    assert_reported(independent(validator, bad).errors,
                    'Observation.effectiveDateTime: "2024-05-01T10:15:00" does not match the R4 '
                    "dateTime format")
    with pytest.raises(AssertionError, match="effectiveDateTime"):
        assert_conformant(validator, bad)


@pytest.mark.parametrize("constraint, resource", [
    ("obs-7", changed(OBSERVATION, component=[
        {"code": OBSERVATION["code"], "valueQuantity": OBSERVATION["valueQuantity"]}])),
    ("qty-3", changed(OBSERVATION, valueQuantity={"value": 35, "code": "deg"})),
    ("per-1", changed(OBSERVATION, effectiveDateTime=None, effectivePeriod={
        "start": "2024-05-01T10:00:00+02:00", "end": "2024-05-01T07:30:00Z"})),
], ids=lambda x: x if isinstance(x, str) else "")
def test_invariants_medplum_skips(validator, constraint: str, resource: dict[str, Any]) -> None:
    assert_reported(independent(validator, resource).errors, f"Constraint {constraint} not met")


def test_period_compares_instants_not_strings(validator) -> None:
    """per-1 is evaluated on typed dateTimes: 10:00+02:00 is before 08:30Z."""
    ok = changed(OBSERVATION, effectiveDateTime=None, effectivePeriod={
        "start": "2024-05-01T10:00:00+02:00", "end": "2024-05-01T08:30:00Z"})
    assert_conformant(validator, ok)


def test_bad_input_is_reported_and_the_validator_keeps_running(validator) -> None:
    assert independent(validator, {"resourceType": "NoSuchType"}).errors
    assert independent(validator, {"status": "final"}).errors
    assert independent(validator, changed(OBSERVATION, note=[])).errors  # empty array
    assert independent(validator, OBSERVATION).errors == ()
