"""The tablet app over HTTP (Flask's client): patients, autosave with optimistic locking,
review, sign-off, the locked record and amendment with history.

The browser tests (tests/browser) drive the same flows by touch in Chromium; these pin
the server's side of each contract, including what it refuses.
"""
from __future__ import annotations

import re

import pytest

from plugin.core import fhir_models
from plugin.core import layout
from tests.support import rendering
from tests.support.signin import PASSWORD, signed_in

SLR = "slr"


@pytest.fixture()
def app(make_app, database_url):
    """The app on each backend (SQLite and a real PostgreSQL server): locking, JSON
    round trips and revisions must behave the same on both."""
    return make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _patient(client, **fields) -> str:
    data = {"family": "Silva", "given": "Ana", "birth_date": "1986-03-14", "identifier": "MRN-1"}
    data.update(fields)
    response = client.post("/patients", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


def _exam(client) -> tuple[str, int]:
    response = client.post(f"/patients/{_patient(client)}/exams")
    assert response.status_code == 303
    exam_id = response.headers["Location"].split("/")[2]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    version = int(re.search(r'"version": (\d+)', page).group(1))
    return exam_id, version


def _save(client, exam_id, version, answers, section=SLR):
    return client.put(f"/exams/{exam_id}/draft", json={"section": section, "answers": answers},
                      headers={"If-Match": f'"{version}"'})


def test_a_new_patient_needs_a_family_name_and_a_real_birth_date(client) -> None:
    response = client.post("/patients", data={"family": " ", "birth_date": "2999-01-01"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="p-family-err">Required.' in page
    assert "The birth date is in the future." in page  # every problem at once
    response = client.post("/patients", data={"family": "Silva", "birth_date": "2999-01-01"})
    assert "The birth date is in the future." in response.get_data(as_text=True)
    response = client.post("/patients", data={"family": "Silva", "birth_date": "14/03/1986"})
    assert "Enter a date as YYYY-MM-DD." in response.get_data(as_text=True)


def test_patients_are_listed_and_searched(client) -> None:
    _patient(client, family="Silva")
    _patient(client, family="Okafor", identifier="MRN-77")
    assert "Okafor" in client.get("/patients?q=mrn-77").get_data(as_text=True)
    assert "Silva" not in client.get("/patients?q=mrn-77").get_data(as_text=True)


def test_user_text_is_escaped_everywhere(client) -> None:
    evil = '<script>alert("x")</script>'
    patient_id = _patient(client, family=evil, given=evil)
    for path in ("/patients", f"/patients/{patient_id}"):
        page = client.get(path).get_data(as_text=True)
        assert evil not in page and "&lt;script&gt;" in page


def test_a_new_exam_starts_with_the_age_from_the_birth_date(client) -> None:
    exam_id, version = _exam(client)
    page = client.get(f"/exams/{exam_id}/pages/patient").get_data(as_text=True)
    assert re.search(r'name="patient.age-years"[^>]*\n?[^>]*value="\d+"', page)
    # one write: the exam and its draft response (naming the exam) arrive together
    assert version == 1
    draft = client.get(f"/fhir/QuestionnaireResponse/{exam_id}").get_json()
    assert draft["identifier"]["value"] == exam_id and draft["meta"]["versionId"] == "draft-1"
    assert draft["item"][0]["item"][0]["linkId"] == "patient.age-years"


def test_autosave_keeps_what_was_typed_and_reports_it(client) -> None:
    exam_id, version = _exam(client)
    response = _save(client, exam_id, version, {"slr.left.onset-angle": 400,
                                                "slr.right.onset-angle": "4o"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == version + 1 and response.headers["ETag"] == f'"{version + 1}"'
    assert "out of range" in body["errors"]["slr.left.onset-angle"][0]
    assert "whole number" in body["errors"]["slr.right.onset-angle"][0]
    page = client.get(f"/exams/{exam_id}/pages/slr").get_data(as_text=True)
    assert 'value="400"' in page and 'value="4o"' in page  # nothing typed is lost


def test_a_page_save_replaces_only_that_page(client) -> None:
    exam_id, version = _exam(client)
    version = _save(client, exam_id, version, {"pain.current": 4}, section="pain").get_json()["version"]
    version = _save(client, exam_id, version, {"slr.left.onset-angle": 40}).get_json()["version"]
    body = _save(client, exam_id, version, {}).get_json()  # the SLR answer was cleared
    assert body["progress"]["pain"] == [1, 2] and body["progress"]["slr"] == [0, 8]


def test_a_stale_version_is_refused_with_a_message_not_overwritten(client) -> None:
    exam_id, version = _exam(client)
    assert _save(client, exam_id, version, {"slr.left.onset-angle": 40}).status_code == 200
    second_tab = _save(client, exam_id, version, {"slr.left.onset-angle": 70})
    assert second_tab.status_code == 412
    assert "changed on another tablet or tab" in second_tab.get_json()["message"]
    assert 'value="40"' in client.get(f"/exams/{exam_id}/pages/slr").get_data(as_text=True)


@pytest.mark.parametrize("headers, body, status", [
    ({}, {"section": SLR, "answers": {}}, 428),
    ({"If-Match": '"x"'}, {"section": SLR, "answers": {}}, 428),
    ({"If-Match": '"1"'}, {"section": "nope", "answers": {}}, 400),
    ({"If-Match": '"1"'}, {"section": SLR, "answers": []}, 400),
    ({"If-Match": '"1"'}, ["not", "an", "object"], 400),
])
def test_malformed_autosaves_get_clear_errors(client, headers, body, status) -> None:
    exam_id, _ = _exam(client)
    response = client.put(f"/exams/{exam_id}/draft", json=body, headers=headers)
    assert response.status_code == status
    assert response.get_json()["message"]


def test_unknown_exam_and_page_are_404(client) -> None:
    exam_id, _ = _exam(client)
    assert client.get("/exams/no-such-exam/pages/slr").status_code == 404
    assert client.get(f"/exams/{exam_id}/pages/no-such-page").status_code == 404
    assert client.get("/patients/12345").status_code == 404


def test_signing_is_impossible_while_errors_remain(client) -> None:
    exam_id, version = _exam(client)
    version = _save(client, exam_id, version, {"slr.left.onset-angle": 400}).get_json()["version"]
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "to correct before signing" in review and "disabled" in review
    response = client.post(f"/exams/{exam_id}/sign", data={"version": version, "password": PASSWORD})
    assert response.status_code == 422
    assert client.get(f"/exams/{exam_id}").headers["Location"].endswith("/pages/patient")


def test_sign_lock_amend_and_history(client, app) -> None:
    exam_id, version = _exam(client)
    version = _save(client, exam_id, version, {"slr.left.onset-angle": 40,
                                               "slr.left.response": "leg-pain-below-knee"}
                    ).get_json()["version"]
    wrong = client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                         "password": "not my password at all"})
    assert wrong.status_code == 422  # re-authentication failed: a field message, no signature
    assert 'id="password-err"' in wrong.get_data(as_text=True)
    assert client.get(f"/exams/{exam_id}").headers["Location"].endswith("/pages/patient")
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": version, "password": PASSWORD})
    assert signed.headers["Location"].endswith(f"/exams/{exam_id}/record")
    record = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert "signed by <strong>Dr Ann Lee</strong>" in record and "40°" in record
    assert _save(client, exam_id, version + 1, {"slr.left.onset-angle": 45}).status_code == 409
    # amend: a reason is required, then edit and sign again
    assert client.post(f"/exams/{exam_id}/amend", data={"version": version + 1, "reason": ""}
                       ).status_code == 422
    assert client.post(f"/exams/{exam_id}/amend", data={"version": version + 1,
                                                        "reason": "Angle misread"}).status_code == 303
    version = _save(client, exam_id, version + 2, {"slr.left.onset-angle": 45,
                                                   "slr.left.response": "leg-pain-below-knee"}
                    ).get_json()["version"]
    client.post(f"/exams/{exam_id}/sign", data={"version": version, "password": PASSWORD})
    record = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert "Revision 2 (amended)" in record and "Angle misread" in record and "45°" in record
    first = client.get(f"/exams/{exam_id}/revisions/1").get_data(as_text=True)
    assert "40°" in first and "An earlier revision" in first

    from plugin.adapters import store
    revisions = store.from_app(app).revisions(exam_id)
    assert [r.status for r in revisions] == ["completed", "amended"]
    for revision in revisions:
        assert revision.response["identifier"]["value"] == exam_id
        assert revision.response["status"] == revision.status
        assert fhir_models.validate(dict(revision.response)) == []
        assert fhir_models.validate(dict(revision.provenance)) == []
    assert revisions[1].provenance["reason"] == [{"text": "Angle misread"}]
    assert revisions[1].provenance["activity"]["coding"][0]["code"] == "UPDATE"


def test_review_shows_red_flags_first(client) -> None:
    exam_id, version = _exam(client)
    _save(client, exam_id, version, {"red-flags.saddle-numbness": True,
                                     "red-flags.bladder-dysfunction": True}, section="red-flags")
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert review.index('id="red-flags"') < review.index('id="differential"')
    assert "cauda equina" in review.lower() and "The clinician decides" in review


def _save_all(client, exam_id, version, answers) -> int:
    """Save plain answers section by section (the tablet saves one page at a time)."""
    sections: dict[str, dict] = {}
    for link_id, value in answers.items():
        sections.setdefault(link_id.split(".")[0], {})[link_id] = value
    for section, part in sections.items():
        response = _save(client, exam_id, version, part, section=section)
        assert response.status_code == 200, response.get_data(as_text=True)
        version = response.get_json()["version"]
    return version


def test_review_says_why_a_diagnosis_of_exclusion_ranks_lower(client) -> None:
    """Deep gluteal syndrome scores higher but ranks below the positive hamstring-origin
    cluster; both are shown, with the reason in words."""
    exam_id, version = _exam(client)
    _save_all(client, exam_id, version, {
        "history.affected-side": "right", "history.onset": "gradual",
        "history.pain-location": ["deep-buttock", "sit-bone"], "history.aggravating": ["sitting"],
        "palpation.sciatic-notch.right": "reproduces-familiar-pain",
        "palpation.ischial-tuberosity.right": "tender",
        "deep-gluteal-tests.seated-piriformis.right": "positive",
        "deep-gluteal-tests.fair.right": "positive",
        "hamstring-tests.modified-bent-knee-stretch.right": "positive",
        "slr.right.response": "buttock-pain"})
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    differential = review[review.index('id="differential"'):review.index('id="referrals"')]
    assert differential.index("Proximal hamstring tendinopathy") < differential.index(
        "Deep gluteal syndrome")
    assert "Ranked below Proximal hamstring tendinopathy" in differential
    assert "diagnosis of exclusion" in differential
    ranking = differential[differential.index('class="ranking"'):]
    ranking = ranking[:ranking.index("</p>")]
    assert re.search(r'<span class="cite">\[\d+(, \d+)*\]</span>$', ranking), ranking


def test_the_handout_of_an_emergency_sends_the_patient_now(client) -> None:
    from tests.support import pdfs

    exam_id, version = _exam(client)
    _save_all(client, exam_id, version, {
        "red-flags.saddle-numbness": True, "red-flags.bladder-dysfunction": True,
        "history.pain-location": ["low-back", "below-knee"], "slr.left.onset-angle": 40,
        "slr.left.response": "leg-pain-below-knee", "slr.left.sensitising": "increased"})
    text = " ".join(pdfs.text_of(client.get(f"/exams/{exam_id}/handout.pdf").data).split())
    assert text.startswith("Go to the emergency department (A&E) now. Do not wait.")
    for routine in ("exercise", "When to come back", "seen soon", "most people"):
        assert routine not in text


def test_pages_carry_no_inline_script_or_handlers(client, form) -> None:
    """The CSP forbids inline script; a page relying on it would break on the tablet."""
    exam_id, _ = _exam(client)
    paths = [f"/exams/{exam_id}/pages/{p.item.link_id}" for p in layout.pages(form)]
    for path in paths + [f"/exams/{exam_id}/review", "/patients"]:
        page = client.get(path).get_data(as_text=True)
        scripts = re.findall(r"<script([^>]*)>", page)
        assert scripts and all("src=" in s or 'type="application/json"' in s for s in scripts)
        assert not re.search(r"<[^>]+\son[a-z]+=", page), path
        assert "style=" not in page, path


def test_documents_of_a_signed_exam_and_of_a_draft(app, client) -> None:
    from tests.support import pdfs

    exam_id, version = _exam(client)
    version = _save(client, exam_id, version, {"slr.left.onset-angle": 40,
                                               "slr.left.response": "leg-pain-below-knee"}
                    ).get_json()["version"]
    draft = client.get(f"/exams/{exam_id}/summary.pdf")
    assert draft.status_code == 200 and draft.mimetype == "application/pdf"
    assert draft.headers["Cache-Control"] == "no-store"
    assert "draft, not signed" in pdfs.text_of(draft.data)
    client.post(f"/exams/{exam_id}/sign", data={"version": version, "password": PASSWORD})
    assert rendering.render_pending(app) == 1
    record = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert f"/exams/{exam_id}/summary.pdf" in record and "large=1" in record
    text = pdfs.text_of(client.get(f"/exams/{exam_id}/summary.pdf").data)
    assert "Dr Ann Lee" in text and "Silva" in text and "draft" not in text
    handout = client.get(f"/exams/{exam_id}/handout.pdf")
    large = client.get(f"/exams/{exam_id}/handout.pdf?large=1")
    assert handout.mimetype == large.mimetype == "application/pdf"
    assert pdfs.page_count(large.data) > pdfs.page_count(handout.data)
    assert client.get("/exams/nope/summary.pdf").status_code == 404


def test_an_identifier_already_on_file_is_refused_with_a_link_to_that_patient(client) -> None:
    first = _patient(client, family="Silva", identifier="MRN-9")
    response = client.post("/patients", data={"family": "Other", "birth_date": "1990-01-01",
                                              "identifier": "MRN-9"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "A patient with this identifier is already on file." in page
    assert f'href="/patients/{first}"' in page and "different person" not in page
    # even "confirmed", an MRN names one person: still refused
    again = client.post("/patients", data={"family": "Other", "birth_date": "1990-01-01",
                                           "identifier": "MRN-9", "confirm": "different-person"})
    assert again.status_code == 409
    assert client.get("/patients?q=other").get_data(as_text=True).count("/patients/") == 0


def test_the_same_name_and_birth_date_asks_for_confirmation(client) -> None:
    first = _patient(client, family="Silva", given="Ana", identifier="")
    data = {"family": "SILVA", "given": "ana", "birth_date": "1986-03-14"}
    response = client.post("/patients", data=data)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "same name and birth date is already on file" in page
    assert f'href="/patients/{first}"' in page and 'value="different-person"' in page
    assert 'value="SILVA"' in page  # what was typed is kept
    confirmed = client.post("/patients", data={**data, "confirm": "different-person"})
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"].rsplit("/", 1)[-1] != first
    # another birth date is another person: no question asked
    assert client.post("/patients", data={**data, "birth_date": "1986-03-15"}).status_code == 303


@pytest.mark.parametrize("term", ["1986-03-14", "14/03/1986", "1986-03", "1986"])
def test_patients_are_found_by_birth_date(client, term) -> None:
    _patient(client, family="Silva", birth_date="1986-03-14", identifier="B-1")
    _patient(client, family="Okafor", birth_date="1990-07-01", identifier="B-2")
    page = client.get(f"/patients?q={term}").get_data(as_text=True)
    assert "Silva" in page and "Okafor" not in page
