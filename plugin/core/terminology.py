"""Canonical URLs and identifier systems: the product's namespace, in one place.

Identifier systems are part of the write-back contract: EHRs de-duplicate on them, so
they must never change once an exam has been delivered.
"""
from __future__ import annotations

BASE = "http://posterior-thigh-exam.org/fhir"

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
OBSERVATION_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PROVENANCE_PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

#: The project's own CodeSystems (published at /fhir/CodeSystem).
EXAM_ANSWERS = f"{BASE}/CodeSystem/exam-answers"
EXAM_TESTS = f"{BASE}/CodeSystem/exam-tests"

#: Identifier systems the plugin owns; conditional creates match on these.
ID_QUESTIONNAIRE_RESPONSE = f"{BASE}/id/questionnaire-response"
ID_OBSERVATION = f"{BASE}/id/exam-observation"
ID_DEVICE = f"{BASE}/id/device"
#: The Provenance has no identifier in R4: the plugin marks it with a meta.tag of this
#: system (code: the response's identifier value), found again with ``_tag``.
TAG_RECORD_PROVENANCE = f"{BASE}/tag/record-provenance"

#: Extensions we write or read.
EXT_OBSERVATION_EXTRACT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract"
EXT_EXTRACT_CATEGORY = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observation-extract-category"
EXT_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_UNIT_OPTION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_MIN_QUANTITY = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-minQuantity"
EXT_MAX_QUANTITY = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-maxQuantity"
EXT_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL = "http://hl7.org/fhir/questionnaire-item-control"
EXT_SLIDER_STEP = "http://hl7.org/fhir/StructureDefinition/questionnaire-sliderStepValue"
EXT_ENTRY_FORMAT = "http://hl7.org/fhir/StructureDefinition/entryFormat"
#: On an answerOption of a repeating choice ("None"): chosen, it excludes every other option.
EXT_OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
#: Ours, on a section's item of a QuestionnaireResponse (valueBoolean true): the section's
#: screen was recorded negative with one tap (each question still carries its own "no").
EXT_RECORDED_IN_ONE_STEP = f"{BASE}/StructureDefinition/recorded-in-one-step"
#: Ours, on an item of an in-progress QuestionnaireResponse (valueReference: the earlier
#: exam's response): the answer was carried from that exam and not yet changed.
EXT_CARRIED_FORWARD = f"{BASE}/StructureDefinition/carried-forward"
#: Ours, on a Questionnaire (valueString: where the owner's wording is found): its items
#: carry placeholders, not the instrument's published wording, so it is never handed to a
#: patient to fill in alone (``record.proms.hand_to_patient``).
EXT_ITEM_WORDING_NOT_INCLUDED = f"{BASE}/StructureDefinition/item-wording-not-included"
EXT_STRUCTURE_LATERALITY = "http://hl7.org/fhir/StructureDefinition/observation-structureLaterality"

#: Decision support: our codes for conditions, red flags and services without a verified
#: standard code (published at /fhir/CodeSystem/decision-support).
DECISION_SUPPORT = f"{BASE}/CodeSystem/decision-support"
ID_CONDITION = f"{BASE}/id/suggested-condition"
ID_SERVICE_REQUEST = f"{BASE}/id/suggested-referral"
#: The clinician's own working diagnosis and referrals (``decision/impression``): other
#: identifier systems than the suggestions', so the two never meet in a conditional create.
ID_CLINICIAN_CONDITION = f"{BASE}/id/clinician-condition"
ID_CLINICIAN_REFERRAL = f"{BASE}/id/clinician-referral"
#: The clinician's ClinicalImpression (the note, and the working diagnosis as its finding).
ID_CLINICIAN_IMPRESSION = f"{BASE}/id/clinician-impression"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"

#: Documents: the clinician summary PDF travels as a DocumentReference (US Core
#: "Writing Clinical Notes": LOINC note type, category clinical-note).
ID_DOCUMENT_REFERENCE = f"{BASE}/id/document-reference"
DOCUMENT_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
