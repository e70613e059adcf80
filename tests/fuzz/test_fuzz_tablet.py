"""Fuzzing the tablet's writes on SQLite and PostgreSQL (issue 13): hostile autosaves and
patient forms. For every case: no 5xx; a refused write changes nothing stored; and
every page of the exam still opens on whatever is stored.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin import knowledge
from plugin.adapters import store as store_mod
from plugin.core import layout
from tests.support.fuzz import FUZZ, HOSTILE, encode, mutants
from tests.support.signin import signed_in

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
PATIENT_FORM = {"family": "Silva", "given": "Ana", "birth_date": "1986-03-14",
                "identifier": "MRN-1"}
#: One valid answer per page kind: choices, booleans, numbers, a quantity, a repeat.
DRAFT = {"section": "history", "answers": {
    "history.affected-side": "left", "history.onset": "sudden", "history.pop": True,
    "history.pain-location": ["buttock"], "history.duration": {"value": 3, "unit": "wk"}}}


@pytest.fixture()
def tablet(make_app, database_url):
    app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})
    return app, signed_in(app)


def _begin(client) -> str:
    response = client.post("/patients", data=PATIENT_FORM)
    patient_id = response.headers["Location"].rsplit("/", 1)[-1]
    return client.post(f"/patients/{patient_id}/exams").headers["Location"].split("/")[2]


def test_hostile_autosaves_change_nothing_and_never_break_a_page(tablet) -> None:
    app, client = tablet
    store = store_mod.from_app(app)
    exam_id = _begin(client)
    form_pages = [p.item.link_id for p in layout.pages(
        app.extensions[knowledge.EXTENSION_KEY].forms["posterior-thigh-exam"])]
    valid = client.put(f"/exams/{exam_id}/draft", json=DRAFT,
                       headers={"If-Match": f'"{store.exam(exam_id).version}"'})
    assert valid.status_code == 200, valid.get_data(as_text=True)

    @FUZZ
    @given(body=mutants(DRAFT), stale=st.booleans())
    def case(body: Any, stale: bool) -> None:
        before = store.exam(exam_id)
        version = before.version - 1 if stale else before.version
        response = client.put(f"/exams/{exam_id}/draft", data=encode(body),
                              content_type="application/json",
                              headers={"If-Match": f'"{version}"'})
        assert response.status_code in (200, 400, 412, 422), \
            response.get_data(as_text=True)[:500]
        assert response.get_json()["message" if response.status_code != 200 else "version"]
        after = store.exam(exam_id)
        if response.status_code != 200:
            assert (after.version, after.answers) == (before.version, before.answers)
        section = body.get("section") if isinstance(body, dict) else None
        page = section if isinstance(section, str) and re.fullmatch(r"[a-z-]+", section) \
            else "history"
        shown = client.get(f"/exams/{exam_id}/pages/{page}")
        assert shown.status_code in (200, 404), shown.get_data(as_text=True)[:500]

    case()
    for path in ["review", *(f"pages/{p}" for p in form_pages)]:
        assert client.get(f"/exams/{exam_id}/{path}").status_code == 200, path
    again = client.put(f"/exams/{exam_id}/draft", json=DRAFT,
                       headers={"If-Match": f'"{store.exam(exam_id).version}"'})
    assert again.status_code == 200


def test_hostile_patient_forms_store_nothing(tablet) -> None:
    app, client = tablet
    store = store_mod.from_app(app)
    text = HOSTILE.filter(lambda v: isinstance(v, str))

    @FUZZ
    @given(fields=st.fixed_dictionaries({}, optional={k: text for k in PATIENT_FORM}),
           query=text)
    def case(fields: dict[str, str], query: str) -> None:
        before = len(store.patients())
        response = client.post("/patients", data={k: v.encode("utf-8", "surrogatepass")
                                                  for k, v in fields.items()})
        assert response.status_code in (303, 400, 422), response.get_data(as_text=True)[:500]
        assert len(store.patients()) == before + (response.status_code == 303)
        listed = client.get("/patients", query_string={"q": query.encode("utf-8",
                                                                          "surrogatepass")})
        assert listed.status_code in (200, 400)

    case()
    assert client.post("/patients", data=PATIENT_FORM).status_code == 303
