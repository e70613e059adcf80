"""The exam pages' safety and speed contracts, server side: a red flag answered "yes"
alerts on that page and every later one (the review banner's words), a one-tap screen
leaves every answer "no" plus the fact that it was recorded in one step (a marker on the
section's response item that ends when an answer changes), and "None" never stands
beside another option. The browser specs (tests/browser/one-tap.spec.mjs) tap the same
flows in Chromium."""
from __future__ import annotations

import json
import re

import pytest

from plugin.adapters import audit, store as store_mod
from plugin.core import layout, terminology as t
from tests.support.conformance import assert_conformant
from tests.support.signin import PASSWORD, signed_in
from tests.support import pages


@pytest.fixture()
def app(make_app, database_url):
    return make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})


@pytest.fixture()
def client(app):
    return signed_in(app)




def _save(client, exam_id, version, section, answers, **extra):
    response = client.put(f"/exams/{exam_id}/draft", headers={"If-Match": f'"{version}"'},
                          json={"section": section, "answers": answers, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _all_no(form) -> dict:
    return {link_id: value for link_id, value in layout.page(form, "red-flags").screen}


def test_a_red_flag_yes_alerts_on_its_page_and_every_later_one(client, kb) -> None:
    exam_id, version = pages.start_exam(client, family="Okoye", given="Ada", birth_date="1979-02-03")
    # the page carries the words each "yes" raises, to show them the moment it is tapped
    page = client.get(f"/exams/{exam_id}/pages/red-flags").get_data(as_text=True)
    assert '"red-flags.saddle-numbness": {"true": ["cauda-equina-syndrome"]}' in page
    assert "Suspected cauda equina syndrome" in page and 'id="red-flags"' not in page
    body = _save(client, exam_id, version, "red-flags", {"red-flags.saddle-numbness": True})
    ces = next(r for r in kb.decision.red_flags if r.id == "cauda-equina-syndrome")
    assert body["redFlags"]["urgency"] == "emergency"
    assert [(f["display"], f["action"]) for f in body["redFlags"]["flags"]] == [
        (ces.display, ces.action)]
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    for section in ("slr", "pain", "red-flags"):  # later pages, and the page itself reloaded
        html = client.get(f"/exams/{exam_id}/pages/{section}").get_data(as_text=True)
        banner = re.search(r'<div id="red-flags".*?</div>', html, re.S).group(0)
        assert 'role="alert"' in banner and "Red flags: emergency" in banner
        assert f"<strong>{ces.display}.</strong> {ces.action}" in banner
        assert f"<strong>{ces.display}.</strong> {ces.action}" in review  # the same words
    body = _save(client, exam_id, body["version"], "red-flags",
                 {"red-flags.saddle-numbness": False})
    assert body["redFlags"]["flags"] == []
    assert 'id="red-flags"' not in client.get(
        f"/exams/{exam_id}/pages/slr").get_data(as_text=True)


def test_a_one_tap_screen_is_kept_as_every_no_and_the_fact_it_was_one_step(
        client, form, validator) -> None:
    exam_id, version = pages.start_exam(client, family="Okoye", given="Ada", birth_date="1979-02-03")
    body = _save(client, exam_id, version, "red-flags", _all_no(form), oneStep=True)
    draft = client.get(f"/fhir/QuestionnaireResponse/{exam_id}").get_json()
    section = next(i for i in draft["item"] if i["linkId"] == "red-flags")
    assert section["extension"] == [{"url": t.EXT_RECORDED_IN_ONE_STEP, "valueBoolean": True}]
    assert [a["answer"] for a in section["item"]] == [[{"valueBoolean": False}]] * 12
    assert_conformant(validator, draft)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "Red flags: all negative, recorded in one step." in review
    # a later save of another page keeps it; signing carries it into the record
    body = _save(client, exam_id, body["version"], "pain", {"pain.current": 3})
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": body["version"],
                                                        "password": PASSWORD})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    record = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert "Red flags: all negative, recorded in one step." in record
    completed = client.get(f"/fhir/QuestionnaireResponse/{exam_id}").get_json()
    assert completed["status"] == "completed"
    assert next(i for i in completed["item"] if i["linkId"] == "red-flags")["extension"] == [
        {"url": t.EXT_RECORDED_IN_ONE_STEP, "valueBoolean": True}]
    assert_conformant(validator, completed)
    # an amendment starts from the record as signed: the fact comes along
    amended = client.post(f"/exams/{exam_id}/amend", data={
        "version": re.search(r'name="version" value="(\d+)"', record).group(1),
        "reason": "Pain score corrected"})
    assert amended.status_code == 303, amended.get_data(as_text=True)
    assert "Red flags: all negative, recorded in one step." in client.get(
        f"/exams/{exam_id}/review").get_data(as_text=True)


@pytest.mark.parametrize("change", [{"red-flags.fever": True}, {"red-flags.fever": None}])
def test_a_screen_answer_changed_afterwards_ends_the_one_step_claim(client, form,
                                                                   change) -> None:
    exam_id, version = pages.start_exam(client, family="Okoye", given="Ada", birth_date="1979-02-03")
    body = _save(client, exam_id, version, "red-flags", _all_no(form), oneStep=True)
    answers = {k: v for k, v in {**_all_no(form), **change}.items() if v is not None}
    # even if a page claimed it still held, a "yes" or a question left out ends it
    _save(client, exam_id, body["version"], "red-flags", answers, oneStep=True)
    draft = client.get(f"/fhir/QuestionnaireResponse/{exam_id}").get_json()
    section = next(i for i in draft["item"] if i["linkId"] == "red-flags")
    assert "extension" not in section
    assert "recorded in one step" not in client.get(
        f"/exams/{exam_id}/review").get_data(as_text=True)


def test_the_same_answers_tapped_one_by_one_are_not_one_step(client, form) -> None:
    exam_id, version = pages.start_exam(client, family="Okoye", given="Ada", birth_date="1979-02-03")
    _save(client, exam_id, version, "red-flags", _all_no(form))
    draft = client.get(f"/fhir/QuestionnaireResponse/{exam_id}").get_json()
    assert "extension" not in next(i for i in draft["item"] if i["linkId"] == "red-flags")


def test_none_beside_another_option_is_flagged_on_the_page(client) -> None:
    exam_id, version = pages.start_exam(client, family="Okoye", given="Ada", birth_date="1979-02-03")
    body = _save(client, exam_id, version, "history", {"history.imaging": ["none", "xray"]})
    assert body["errors"] == {"history.imaging": [
        '"None" excludes every other answer; choose it alone or leave it out.']}
    page = client.get(f"/exams/{exam_id}/pages/history").get_data(as_text=True)
    assert re.search(r'value="none" data-exclusive checked', page)


def test_a_new_exam_carries_the_history_of_the_last_signed_one(app, client, form,
                                                               validator) -> None:
    exam_id, version = pages.start_exam(client, family="Okoye", given="Ada", birth_date="1979-02-03")
    body = _save(client, exam_id, version, "history", {
        "history.affected-side": "right", "history.onset": "gradual",
        "history.imaging": ["mri-pelvis-hamstring"], "history.pt-weeks": 4,
        "history.pain-location": ["sit-bone"]})
    body = _save(client, exam_id, body["version"], "red-flags", {"red-flags.fever": False})
    body = _save(client, exam_id, body["version"], "slr", {"slr.right.onset-angle": 70})
    assert client.post(f"/exams/{exam_id}/sign", data={
        "version": body["version"], "password": PASSWORD}).status_code == 303
    patient = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    patient_id = re.search(r'href="/patients/([0-9a-f-]+)"', patient).group(1)
    second = client.post(f"/patients/{patient_id}/exams").headers["Location"].split("/")[2]
    draft = client.get(f"/fhir/QuestionnaireResponse/{second}").get_json()
    assert_conformant(validator, draft)
    answered = {}

    def walk(items):
        for i in items:
            if "answer" in i:
                answered[i["linkId"]] = i
            walk(i.get("item", []))
    walk(draft["item"])
    # the story is carried and marked with its source; nothing else is
    assert set(answered) == {"patient.age-years", "history.affected-side", "history.onset",
                             "history.imaging"}
    assert answered["history.onset"]["extension"][0]["url"] == t.EXT_CARRIED_FORWARD
    assert answered["history.onset"]["extension"][0]["valueReference"]["identifier"][
        "value"] == exam_id
    assert "extension" not in answered["patient.age-years"]
    page = client.get(f"/exams/{second}/pages/history").get_data(as_text=True)
    assert page.count('class="carried"') == 3 and "Carried from the exam signed on" in page
    # its read is in the trail, as the user's
    events = [json.loads(e) for e in audit.events_since(store_mod.from_app(app).engine, None)]
    carried = [e for e in events if any(x.get("description") == "history carried to a new exam"
                                        for x in e.get("entity", []))]
    assert len(carried) == 1
    assert carried[0]["subtype"][0]["code"] == "vread"
    assert any(x["what"].get("reference") == f"QuestionnaireResponse/{exam_id}/_history/1"
               for x in carried[0]["entity"])
    assert_conformant(validator, carried[0])
    # changed on the page (it no longer says carried), the mark goes; never comes back
    version = pages.version_of(page)
    body = _save(client, second, version, "history", {
        "history.affected-side": "left", "history.onset": "gradual",
        "history.imaging": ["mri-pelvis-hamstring"]},
        carried=["history.onset", "history.imaging"])
    _save(client, second, body["version"], "history", {
        "history.affected-side": "left", "history.onset": "gradual",
        "history.imaging": ["mri-pelvis-hamstring"]},
        carried=["history.affected-side", "history.onset", "history.imaging"])
    page = client.get(f"/exams/{second}/pages/history").get_data(as_text=True)
    assert page.count('class="carried"') == 2
    assert 'data-carried-for="history.affected-side"' not in page
