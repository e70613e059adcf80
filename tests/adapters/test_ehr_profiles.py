"""Which ways of sending a CapabilityStatement allows (``ways_for``, ``how``; pure):
transaction, then one-by-one conditional creates, then documents found by identifier
before they are created, never a way that could duplicate the record on a retry, and
only queries the statement declares (no modifiers, no chains)."""
from __future__ import annotations

from typing import Any

import pytest

from plugin.adapters.ehr_capability import Match, bundle_types, how, \
    profile_from_capability, why_not
from plugin.adapters.ehr_profiles import PROFILES, SETTINGS, for_profile

RECORD = ("QuestionnaireResponse", "Observation", "DocumentReference", "Device", "Provenance")


def statement(*, transaction: bool = False, mode: str = "server",
              common: tuple[str, ...] = (), **types: dict[str, Any]) -> dict[str, Any]:
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
    if common:  # search parameters of every type
        rest["searchParam"] = [{"name": n, "type": "token"} for n in common]
    if transaction:
        rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}]
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "fhirVersion": "4.0.1", "format": ["json"], "rest": [rest]}


CONDITIONAL = {"interactions": ("create", "read"), "conditional": True,
               "params": ("identifier",)}
PLAIN = {"interactions": ("create",)}
SEARCHABLE = {"interactions": ("create", "search-type"), "params": ("identifier", "patient")}


def everything(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**{kind: CONDITIONAL for kind in RECORD}, **overrides}


def test_transactions_with_a_conditional_create_of_every_type_send_the_bundle() -> None:
    assert profile_from_capability(statement(transaction=True, **everything()),
                                   RECORD) == "transaction"


def test_only_the_types_in_the_bundle_matter() -> None:
    caps = statement(transaction=True, **everything(), Condition=SEARCHABLE)
    assert profile_from_capability(caps, RECORD) == "transaction"
    assert profile_from_capability(caps, RECORD + ("Condition",)) == "individual"


@pytest.mark.parametrize("search_only", [
    pytest.param({"Observation": SEARCHABLE}, id="found by a search, not conditionally"),
    pytest.param({"Device": {"interactions": ("create", "search-type"), "conditional": "true",
                             "params": ("identifier",)}},
                 id="conditionalCreate not the boolean true"),
])
def test_an_entry_that_must_be_searched_for_first_goes_one_by_one(search_only) -> None:
    caps = statement(transaction=True, **everything(**search_only))
    assert profile_from_capability(caps, RECORD) == "individual"


@pytest.mark.parametrize("unmatched", [
    pytest.param(PLAIN, id="create only"),
    pytest.param({"interactions": ("create",), "conditional": True},
                 id="conditional create, but its identifier is not a declared parameter"),
    pytest.param({"interactions": ("read",), "conditional": True, "params": ("identifier",)},
                 id="no create"),
])
def test_a_type_the_ehr_cannot_match_is_left_out_with_the_reason(unmatched) -> None:
    caps = statement(transaction=True, **everything(Observation=unmatched))
    entry = {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation"},
             "request": {"ifNoneExist": "identifier=urn:x|1"}}
    assert how(caps, entry) is None
    assert "Observation" in why_not(caps, entry)
    assert profile_from_capability(caps, RECORD) == "transaction"  # the rest still can


PROVENANCE = {"fullUrl": "urn:uuid:p", "request": {"ifNoneExist": "_tag=urn:tag|exam-1"},
              "resource": {"resourceType": "Provenance", "meta": {"tag": [
                  {"system": "urn:tag", "code": "exam-1"}]},
                  "target": [{"reference": "urn:uuid:obs"}],
                  "entity": [{"role": "source", "what": {"reference": "urn:uuid:qr"}}]}}


@pytest.mark.parametrize(("common", "params", "match"), [
    pytest.param(("_tag",), ("target", "entity"), Match(query="_tag=urn:tag|exam-1"),
                 id="_tag declared for every type: the plugin's tag"),
    pytest.param((), ("_tag", "target"), Match(query="_tag=urn:tag|exam-1"),
                 id="_tag declared for Provenance"),
    pytest.param((), ("entity", "target"), Match(parameter="entity", after="urn:uuid:qr"),
                 id="entity: the response's id in the EHR, once it is there"),
    pytest.param((), ("target",), Match(parameter="target", after="urn:uuid:obs"),
                 id="target: the first target's id in the EHR"),
])
def test_a_provenance_is_found_again_only_by_what_the_ehr_declares(common, params, match):
    caps = statement(common=common, Provenance={**CONDITIONAL, "params": params})
    assert how(caps, PROVENANCE).match == match
    assert match.resolve({"urn:uuid:qr": "QuestionnaireResponse/7",
                          "urn:uuid:obs": "Observation/8"}) in (
        "_tag=urn:tag|exam-1", "entity=QuestionnaireResponse/7", "target=Observation/8")


@pytest.mark.parametrize("params", [
    pytest.param(("identifier", "patient"), id="nothing to find it by"),
    pytest.param(("entity:QuestionnaireResponse.identifier",), id="a chain, even if listed"),
    pytest.param(("_tag:not",), id="a modifier"),
])
def test_a_provenance_the_ehr_cannot_find_again_is_not_sent(params) -> None:
    caps = statement(Provenance={**CONDITIONAL, "params": params})
    assert how(caps, PROVENANCE) is None
    assert "_tag, entity or target" in why_not(caps, PROVENANCE)


def test_without_transactions_conditional_document_creates_go_one_by_one() -> None:
    assert profile_from_capability(statement(**everything()), RECORD) == "individual"
    only_documents = statement(DocumentReference=CONDITIONAL)
    assert profile_from_capability(only_documents, RECORD) == "individual"


def test_without_conditional_creates_documents_found_by_identifier_go_one_by_one() -> None:
    caps = statement(transaction=True, DocumentReference=SEARCHABLE, Observation=SEARCHABLE)
    assert profile_from_capability(caps, RECORD) == "individual"


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
    pytest.param(statement(transaction=True), id="no resources"),
    pytest.param({"resourceType": "CapabilityStatement"}, id="no rest"),
])
def test_an_ehr_that_cannot_take_documents_is_named(caps) -> None:
    with pytest.raises(ValueError, match="no create of DocumentReference"):
        profile_from_capability(caps, RECORD)


def test_an_ehr_without_documents_still_gets_what_it_takes() -> None:
    caps = statement(transaction=True, Observation=CONDITIONAL)
    assert profile_from_capability(caps, RECORD) == "transaction"


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
