"""Which EHR profile a CapabilityStatement allows (``profile_from_capability``, pure):
transaction, then one-by-one conditional creates, then documents found by identifier
before they are created, and never a way that could duplicate the record on a retry."""
from __future__ import annotations

from typing import Any

import pytest

from plugin.adapters.ehr_capability import bundle_types, profile_from_capability
from plugin.adapters.ehr_profiles import PROFILES, SETTINGS, for_profile

RECORD = ("QuestionnaireResponse", "Observation", "DocumentReference", "Device", "Provenance")


def statement(*, transaction: bool = False, mode: str = "server",
              **types: dict[str, Any]) -> dict[str, Any]:
    """A CapabilityStatement: ``types`` maps a type to ``{"interactions": [...],
    "conditional": bool, "params": [...]}``."""
    resources = []
    for kind, spec in types.items():
        resource: dict[str, Any] = {
            "type": kind,
            "interaction": [{"code": c} for c in spec.get("interactions", ("create",))]}
        if "conditional" in spec:
            resource["conditionalCreate"] = spec["conditional"]
        if spec.get("params"):
            resource["searchParam"] = [{"name": n, "type": "token"} for n in spec["params"]]
        resources.append(resource)
    rest: dict[str, Any] = {"mode": mode, "resource": resources}
    if transaction:
        rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}]
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "fhirVersion": "4.0.1", "format": ["json"], "rest": [rest]}


CONDITIONAL = {"interactions": ("create", "read"), "conditional": True}
PLAIN = {"interactions": ("create",)}
SEARCHABLE = {"interactions": ("create", "search-type"), "params": ("identifier", "patient")}


def everything(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**{kind: CONDITIONAL for kind in RECORD}, **overrides}


def test_transactions_with_a_conditional_create_of_every_type_send_the_bundle() -> None:
    assert profile_from_capability(statement(transaction=True, **everything()),
                                   RECORD) == "transaction"


def test_only_the_types_in_the_bundle_matter() -> None:
    caps = statement(transaction=True, **everything(), Condition=PLAIN)
    assert profile_from_capability(caps, RECORD) == "transaction"
    assert profile_from_capability(caps, RECORD + ("Condition",)) == "individual"


@pytest.mark.parametrize("missing", [
    pytest.param({"Observation": PLAIN}, id="one type without conditional create"),
    pytest.param({"Observation": {"interactions": ("read",), "conditional": True}},
                 id="one type without create"),
    pytest.param({"Device": {"interactions": ("create",), "conditional": "true"}},
                 id="conditionalCreate not the boolean true"),
])
def test_a_transaction_that_cannot_match_every_entry_goes_one_by_one(missing) -> None:
    caps = statement(transaction=True, **everything(**missing))
    assert profile_from_capability(caps, RECORD) == "individual"


def test_without_transactions_conditional_document_creates_go_one_by_one() -> None:
    assert profile_from_capability(statement(**everything()), RECORD) == "individual"
    only_documents = statement(DocumentReference=CONDITIONAL)
    assert profile_from_capability(only_documents, RECORD) == "individual"


def test_without_conditional_creates_documents_found_by_identifier_are_sent_alone() -> None:
    caps = statement(transaction=True, DocumentReference=SEARCHABLE, Observation=SEARCHABLE)
    assert profile_from_capability(caps, RECORD) == "document-only"


@pytest.mark.parametrize("document", [
    pytest.param(PLAIN, id="create only"),
    pytest.param({"interactions": ("create", "search-type"), "params": ("patient",)},
                 id="search, but not by identifier"),
    pytest.param({"interactions": ("create",), "params": ("identifier",)},
                 id="identifier declared, no search-type"),
])
def test_documents_that_could_only_be_created_blindly_are_not_sent(document) -> None:
    with pytest.raises(ValueError, match="a retry could duplicate"):
        profile_from_capability(statement(DocumentReference=document), RECORD)


@pytest.mark.parametrize("caps", [
    pytest.param(statement(transaction=True, Observation=CONDITIONAL), id="no documents"),
    pytest.param(statement(transaction=True), id="no resources"),
    pytest.param({"resourceType": "CapabilityStatement"}, id="no rest"),
])
def test_an_ehr_that_cannot_take_documents_is_named(caps) -> None:
    with pytest.raises(ValueError, match="no create of DocumentReference"):
        profile_from_capability(caps, RECORD)


@pytest.mark.parametrize("caps", [{"resourceType": "OperationOutcome"}, [], "metadata"])
def test_anything_but_a_capability_statement_is_refused(caps) -> None:
    with pytest.raises(ValueError, match="not a CapabilityStatement"):
        profile_from_capability(caps, RECORD)  # type: ignore[arg-type]


def test_the_server_rest_is_read_not_the_client_one() -> None:
    caps = statement(transaction=True, **everything())
    client = statement(mode="client", DocumentReference=PLAIN)["rest"][0]
    caps["rest"].insert(0, client)
    assert profile_from_capability(caps, RECORD) == "transaction"


def test_bundle_types_in_order_each_once() -> None:
    bundle = {"entry": [{"resource": {"resourceType": t}} for t in
                        ("QuestionnaireResponse", "Observation", "Observation", "Device")]}
    assert bundle_types(bundle) == ["QuestionnaireResponse", "Observation", "Device"]
    assert bundle_types({}) == []


def test_auto_is_a_setting_not_a_way_to_send() -> None:
    assert "auto" in SETTINGS and "auto" not in PROFILES
    with pytest.raises(ValueError, match="EHR_PROFILE must be one of"):
        for_profile({"entry": []}, "auto")
