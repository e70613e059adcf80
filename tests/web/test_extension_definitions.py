"""Our own extensions are published: a receiver that meets
``…/StructureDefinition/recorded-in-one-step`` or ``…/carried-forward`` in a
QuestionnaireResponse, or ``…/item-wording-not-included`` on a Questionnaire, can read
(or search by url) its definition here, without signing in, and what we write fits what
the definition says (where it sits, its value type)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from plugin.core import carry_forward, drafts, layout, terminology as t
from plugin.core.fhir_models import validate
from plugin.core.responses import Context

OURS = {name: value for name, value in vars(t).items()
        if name.startswith("EXT_") and value.startswith(f"{t.BASE}/StructureDefinition/")}


def _ok(response) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    return response.get_json()


def test_every_extension_of_ours_is_defined_and_read_without_a_user(anonymous) -> None:
    assert set(OURS) == {"EXT_RECORDED_IN_ONE_STEP", "EXT_CARRIED_FORWARD",
                         "EXT_ITEM_WORDING_NOT_INCLUDED"}
    for url in OURS.values():
        id_ = url.rsplit("/", 1)[1]
        definition = _ok(anonymous.get(f"/fhir/StructureDefinition/{id_}"))
        assert validate(definition) == []
        assert (definition["url"], definition["type"], definition["kind"],
                definition["abstract"], definition["derivation"], definition["baseDefinition"],
                definition["fhirVersion"]) == \
            (url, "Extension", "complex-type", False, "constraint",
             "http://hl7.org/fhir/StructureDefinition/Extension", "4.0.1")
        elements = {e["id"]: e for e in definition["differential"]["element"]}
        assert elements["Extension.url"]["fixedUri"] == url
        found = _ok(anonymous.get("/fhir/StructureDefinition", query_string={"url": url}))
        assert [e["fullUrl"] for e in found["entry"]] == \
            [f"http://localhost/fhir/StructureDefinition/{id_}"]


def test_an_unknown_definition_is_404_and_an_unknown_url_finds_nothing(anonymous) -> None:
    response = anonymous.get("/fhir/StructureDefinition/nope")
    assert response.status_code == 404
    assert "StructureDefinition/nope is not known" in response.get_data(as_text=True)
    found = _ok(anonymous.get("/fhir/StructureDefinition",
                              query_string={"url": f"{t.BASE}/StructureDefinition/nope"}))
    assert found["total"] == 0
    everything = _ok(anonymous.get("/fhir/StructureDefinition"))
    assert everything["total"] == len(OURS)


def _extensions(nodes: Any, path: str = "QuestionnaireResponse.item"
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    for node in nodes or []:
        for extension in node.get("extension") or []:
            yield path, extension
        yield from _extensions(node.get("item"), path)


def test_what_we_write_fits_the_definitions(anonymous, form) -> None:
    """A draft with a section recorded in one step and a carried answer: each extension
    sits where its definition's context says, with the value type it fixes."""
    source = carry_forward.source("exam-1", "2026-11-01")
    screen = dict(layout.page(form, "red-flags").screen)  # every red flag "no"
    checked = drafts.check(form, {"history.onset": "gradual", **screen})
    qr = drafts.response(form, checked, Context(status="in-progress", identifier="exam-2"),
                         frozenset({"red-flags"}), {"history.onset": source})
    written = list(_extensions(qr.get("item")))
    assert {e["url"] for _, e in written} == {t.EXT_RECORDED_IN_ONE_STEP, t.EXT_CARRIED_FORWARD}
    _fits(anonymous, written)


def test_the_questionnaire_marker_fits_its_definition(anonymous) -> None:
    """LEFS as served says its items carry no published wording, as the definition says."""
    lefs = _ok(anonymous.get("/fhir/Questionnaire/lefs"))
    written = [("Questionnaire", e) for e in lefs.get("extension") or []]
    assert [e["url"] for _, e in written] == [t.EXT_ITEM_WORDING_NOT_INCLUDED]
    _fits(anonymous, written)
    start_back = _ok(anonymous.get("/fhir/Questionnaire/keele-start-back"))
    assert "extension" not in start_back  # its items carry LOINC's wording


def _fits(anonymous, written) -> None:  # type: ignore[no-untyped-def]
    for path, extension in written:
        definition = _ok(anonymous.get("/fhir/StructureDefinition",
                                       query_string={"url": extension["url"]}))
        definition = definition["entry"][0]["resource"]
        assert path in [c["expression"] for c in definition["context"]]
        value = next(e for e in definition["differential"]["element"]
                     if e["id"] == "Extension.value[x]")
        (type_,) = value["type"]
        key = "value" + type_["code"][0].upper() + type_["code"][1:]
        assert set(extension) == {"url", key}, extension
