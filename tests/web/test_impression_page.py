"""The review's impression-and-plan panel over HTTP: a form post and the page's
autosave (If-Match), field messages for bad input (never a 500, what was typed kept),
signing that asks for a missing reason, and the record page showing the clinician's
impression apart from the suggestions (or saying none was recorded)."""
from __future__ import annotations

import re

import pytest

from tests.support.signin import PASSWORD, signed_in
from tests.web.test_exam_pages import _exam, _save

#: The SLR answers suggest lumbar radiculopathy and routine physiotherapy.
SLR = {"slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee"}


@pytest.fixture()
def app(make_app):
    return make_app({"WTF_CSRF_ENABLED": False})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _ready(client) -> tuple[str, int]:
    exam_id, version = _exam(client)
    return exam_id, _save(client, exam_id, version, SLR).get_json()["version"]


def _version(page: str) -> int:
    return int(re.search(r'name="version" value="(\d+)"', page).group(1))


def test_the_plan_is_saved_from_the_review_and_shown_apart_on_the_record(client) -> None:
    exam_id, version = _ready(client)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert review.index("Decision support") < review.index("Your impression and plan") \
        < review.index('id="sign-form"')
    assert "Lumbar radiculopathy (disc-related sciatica) (suggested)" in review
    saved = client.post(f"/exams/{exam_id}/impression", data={
        "version": version, "diagnosis.condition": "lumbar-radiculopathy",
        "diagnosis.status": "confirmed", "referral.physiotherapy.order": "no",
        "referral.physiotherapy.reason": "Sees a physio <already>",
        "add.service": "spine-surgeon", "add.priority": "routine",
        "add.reason": "Second opinion asked for", "note": "Discussed with the patient."})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/review#impression")
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert 'value="Sees a physio &lt;already&gt;"' in review  # kept, and escaped
    assert "Spine surgeon" in review and "added by you" in review
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": _version(review),
                                                         "password": PASSWORD})
    assert signed.status_code == 303
    record = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    mine = record[record.index('id="decided"'):record.index("Decision support")]
    assert "Lumbar radiculopathy (disc-related sciatica) (confirmed; the first suggestion)" in mine
    assert "not made. Reason: Sees a physio &lt;already&gt;" in mine
    assert "added (not suggested), routine. Reason: Second opinion asked for" in mine
    assert "Discussed with the patient." in mine
    assert "spine-surgeon" not in mine and "lumbar-radiculopathy" not in mine  # words, not ids


def test_signing_without_an_impression_says_so_on_the_record(client) -> None:
    exam_id, version = _ready(client)
    client.post(f"/exams/{exam_id}/sign", data={"version": version, "password": PASSWORD})
    record = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert "No impression recorded by the clinician." in record


@pytest.mark.parametrize("fields, field, message", [
    ({"diagnosis.condition": "gout", "diagnosis.status": "confirmed"}, "diagnosis-condition",
     "unknown condition"),
    ({"diagnosis.condition": "hamstring-strain", "diagnosis.status": "maybe"}, "diagnosis-status",
     "provisional or confirmed"),
    ({"add.service": "acupuncture", "add.reason": "x"}, "add", "Not a referral"),
    ({"note": "x" * 1001}, "note", "At most 1000 characters"),
])
def test_bad_input_is_a_field_message_and_keeps_what_was_typed(client, fields, field,
                                                               message) -> None:
    exam_id, version = _ready(client)
    response = client.post(f"/exams/{exam_id}/impression", data={"version": version, **fields})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'id="{field}-err">[^<]*{message}', page)
    if "note" in fields:
        assert "x" * 1001 in page
    assert client.post(f"/exams/{exam_id}/impression", data={
        "version": version, "note": "fine"}).status_code == 303  # nothing was saved before


def test_the_autosave_quotes_its_version_and_a_stale_one_is_refused(client) -> None:
    exam_id, version = _ready(client)
    json_headers = {"Accept": "application/json"}
    saved = client.post(f"/exams/{exam_id}/impression", data={"note": "first"},
                        headers={**json_headers, "If-Match": f'"{version}"'})
    assert saved.status_code == 200 and saved.get_json() == {"version": version + 1}
    stale = client.post(f"/exams/{exam_id}/impression", data={"note": "second"},
                        headers={**json_headers, "If-Match": f'"{version}"'})
    assert stale.status_code == 412 and stale.get_json()["version"] == version + 1
    bad = client.post(f"/exams/{exam_id}/impression", data={"note": "y" * 1001},
                      headers={**json_headers, "If-Match": f'"{version + 1}"'})
    assert bad.status_code == 422 and "note" in bad.get_json()["errors"]
    assert client.post(f"/exams/{exam_id}/impression", data={"note": "x"},
                       headers=json_headers).status_code == 428


def test_signing_asks_for_the_reason_of_a_dropped_suggestion(client) -> None:
    exam_id, version = _ready(client)
    client.post(f"/exams/{exam_id}/impression", data={
        "version": version, "referral.physiotherapy.order": "no"})
    refused = client.post(f"/exams/{exam_id}/sign", data={"version": version + 1,
                                                          "password": PASSWORD})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'id="referral-physiotherapy-reason-err">Say why you are not making' in page
    assert client.get(f"/exams/{exam_id}/record").status_code == 302  # not signed


def test_only_a_clinician_records_the_impression(app, client) -> None:
    exam_id, version = _ready(client)
    assistant = signed_in(app, "assistant")
    review = assistant.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "The clinician who signs records the impression and plan." in review
    assert 'id="impression-form"' not in review
    assert assistant.post(f"/exams/{exam_id}/impression", data={
        "version": version, "note": "x"}).status_code == 403
