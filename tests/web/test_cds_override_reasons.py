"""The MRI card's overrideReasons are the concepts of a published CodeSystem
(questionnaires/codesystems/cds-override-reason.json), and feedback is checked against it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugin import create_app
from plugin.config import DEFAULTS
from plugin.core import fhir_models
from plugin.errors import KnowledgeError
from tests.support import cds, knowledge_copies
from tests.support.cds import LUMBAR_MRI, MRI_ORDER, PATIENT_VIEW
from tests.support.conformance import IndependentValidator, assert_conformant
from tests.support.jwt_keys import CdsClient

URL = "http://posterior-thigh-exam.org/fhir/CodeSystem/cds-override-reason"
FILE = Path(DEFAULTS["QUESTIONNAIRES_DIR"]) / "codesystems" / "cds-override-reason.json"


@pytest.fixture(scope="module")
def ehr() -> CdsClient:
    return CdsClient()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, ehr: CdsClient):  # type: ignore[no-untyped-def]
    with cds.app_with(tmp_path_factory.mktemp("or"), cds.settings(ehr)) as made:
        yield made


def _published(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.get(f"/fhir/CodeSystem?url={URL}")
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = response.get_json()
    assert bundle["total"] == 1
    (entry,) = bundle["entry"]
    assert entry["fullUrl"] == "http://localhost/fhir/CodeSystem/cds-override-reason"
    return dict(entry["resource"])


def test_the_code_system_is_published_as_loaded(client) -> None:
    resource = _published(client)
    assert resource == json.loads(FILE.read_text(encoding="utf-8"))
    assert resource["url"] == URL and resource["count"] == len(resource["concept"])
    read = client.get("/fhir/CodeSystem/cds-override-reason")
    assert read.status_code == 200 and read.get_json() == resource


def test_the_code_system_passes_both_validators(client) -> None:
    resource = _published(client)
    assert fhir_models.validate(resource) == []
    with IndependentValidator() as validator:
        assert_conformant(validator, resource)


def test_every_override_reason_a_card_offers_is_a_code_of_it(client, ehr, kb) -> None:
    concepts = {c["code"]: c["display"] for c in _published(client)["concept"]}
    data = cds.case("disc-radiculopathy-2-weeks-severe")
    prefetch = {"patient": data["patient"],
                "observations": cds.observations(kb, data, effective=cds.today())}
    response = cds.post(client, ehr, MRI_ORDER, cds.body(
        "order-sign", data["patient"]["id"], prefetch=prefetch, draftOrders=cds.orders(LUMBAR_MRI)))
    assert response.status_code == 200, response.get_data(as_text=True)
    (card,) = response.get_json()["cards"]
    reasons = card["overrideReasons"]
    assert [r["code"] for r in reasons] == list(concepts)  # all of them, in order
    for reason in reasons:
        assert reason == {"system": URL, "code": reason["code"],
                          "display": concepts[reason["code"]]}


def _feedback(reason: dict[str, Any] | None, comment: str = "seen by spine team"
              ) -> dict[str, Any]:
    override: dict[str, Any] = {"userComment": comment}
    if reason is not None:
        override["reason"] = reason
    return {"feedback": [{"card": "3f1c0b9e-0000-4000-8000-000000000001",
                          "outcome": "overridden", "overrideReason": override,
                          "outcomeTimestamp": "2026-11-20T10:01:00Z"}]}


@pytest.mark.parametrize("reason", [
    {"system": URL, "code": "specialist-requested", "display": "Requested by a specialist"},
    {"system": URL, "code": "clinical-judgement"},
    None,  # a comment without a chosen reason
])
def test_feedback_with_an_offered_reason_is_accepted(client, ehr, reason: Any) -> None:
    response = cds.post(client, ehr, f"{MRI_ORDER}/feedback", _feedback(reason))
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("reason", [
    {"system": URL, "code": "patient-insisted"},
    {"system": "https://ehr.example.org/reasons", "code": "specialist-requested"},
    {"code": "specialist-requested"},
])
def test_feedback_with_a_reason_not_in_the_code_system_is_400(client, ehr, reason: Any) -> None:
    response = cds.post(client, ehr, f"{PATIENT_VIEW}/feedback", _feedback(reason))
    assert response.status_code == 400, response.get_data(as_text=True)
    code, text = cds.refusal(response)
    assert code == "invalid" and "override reason" in text
    assert "cds-override-reason" in text
    assert "seen by spine team" not in text


def test_without_the_code_system_the_app_does_not_start(tmp_path) -> None:
    folder = knowledge_copies.copy(tmp_path)
    (folder / "questionnaires" / "codesystems" / "cds-override-reason.json").unlink()
    with pytest.raises(KnowledgeError, match="cds-override-reason.json: .*missing"):
        create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'db'}",
                    "QUESTIONNAIRES_DIR": str(folder / "questionnaires"),
                    "MAPPINGS_DIR": str(folder / "mappings")})
