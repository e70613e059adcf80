"""How a record is cut into steps (``ehr_steps.plan`` and its steps; pure): an entry after
everything it refers to, transactions within the limit, and a Provenance matched by
another entry's EHR id in a step after that entry."""
from __future__ import annotations

from typing import Any

from plugin.adapters import ehr_steps
from tests.adapters.test_ehr_profiles import CONDITIONAL, statement


def entry(url: str, kind: str, **resource: Any) -> dict[str, Any]:
    query = f"identifier=urn:x|{url}" if kind != "Provenance" else "_tag=urn:t|1"
    return {"fullUrl": f"urn:uuid:{url}", "resource": {"resourceType": kind, **resource},
            "request": {"method": "POST", "url": kind, "ifNoneExist": query}}


RECORD = {"entry": [
    entry("obs1", "Observation", derivedFrom=[{"reference": "urn:uuid:qr"}]),
    entry("qr", "QuestionnaireResponse"),
    entry("obs2", "Observation", derivedFrom=[{"reference": "urn:uuid:qr"}]),
    entry("prov", "Provenance", target=[{"reference": "urn:uuid:obs1"},
                                        {"reference": "urn:uuid:obs2"}],
          entity=[{"role": "source", "what": {"reference": "urn:uuid:qr"}}]),
]}


def urls(steps: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[e["fullUrl"].rpartition(":")[2] for e in step] for step in steps]


def test_an_entry_goes_after_what_it_refers_to() -> None:
    chosen = ehr_steps.plan(RECORD, None)
    assert [e["fullUrl"] for e in chosen.entries] == [
        "urn:uuid:qr", "urn:uuid:obs1", "urn:uuid:obs2", "urn:uuid:prov"]
    assert chosen.unsent == ()


def test_transactions_hold_at_most_the_limit_in_order() -> None:
    chosen = ehr_steps.plan(RECORD, None)
    assert urls(ehr_steps._steps(list(chosen.entries), chosen.hows, 3)) == \
        [["qr", "obs1", "obs2"], ["prov"]]
    assert urls(ehr_steps._steps(list(chosen.entries), chosen.hows, None)) == \
        [["qr", "obs1", "obs2", "prov"]]


def test_a_provenance_found_by_its_entity_waits_for_the_response_s_ehr_id() -> None:
    caps = statement(QuestionnaireResponse=CONDITIONAL, Observation=CONDITIONAL,
                     Provenance={**CONDITIONAL, "params": ("entity",)})
    chosen = ehr_steps.plan(RECORD, caps)
    assert chosen.hows["urn:uuid:prov"].match.after == "urn:uuid:qr"
    assert urls(ehr_steps._steps(list(chosen.entries), chosen.hows, None)) == \
        [["qr", "obs1", "obs2"], ["prov"]]


def test_what_cannot_be_found_again_is_left_out_with_the_reason() -> None:
    caps = statement(QuestionnaireResponse=CONDITIONAL, Observation=CONDITIONAL,
                     Provenance=CONDITIONAL)  # identifier only: nothing a Provenance has
    chosen = ehr_steps.plan(RECORD, caps)
    assert [e["resource"]["resourceType"] for e in chosen.entries] == \
        ["QuestionnaireResponse", "Observation", "Observation"]
    assert chosen.unsent == (("Provenance", "the EHR declares no search (_tag, entity or "
                                            "target) to find a Provenance again, so a "
                                            "retry could duplicate it"),)


def test_documents_only_keeps_the_documents_and_their_provenance() -> None:
    record = {"entry": [*RECORD["entry"][:3], entry("doc", "DocumentReference"),
                        entry("prov", "Provenance", target=[{"reference": "urn:uuid:doc"},
                                                            {"reference": "urn:uuid:obs1"}])]}
    chosen = ehr_steps.plan(record, None, documents_only=True)
    assert [e["fullUrl"] for e in chosen.entries] == ["urn:uuid:doc", "urn:uuid:prov"]
    assert chosen.entries[1]["resource"]["target"] == [{"reference": "urn:uuid:doc"}]
    assert {kind for kind, _ in chosen.unsent} == {"QuestionnaireResponse", "Observation"}
