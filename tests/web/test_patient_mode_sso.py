"""Leaving patient mode without a local password: the clinician confirms who they are
at their identity provider, which must ask them again (as for a signature); a stale
sign-in there leaves the tablet in patient mode."""
from __future__ import annotations

import time
import urllib.parse

import requests

from plugin.adapters import store as store_mod
from tests.support import pages
from tests.support.step_up import continue_url

from .test_prom_pages import add, begin_exam
from .test_sso import _sign_in, app, op, provider  # noqa: F401  (fixtures)


def _handed(app, op):  # noqa: F811
    client = app.test_client()
    _sign_in(client, op)
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id, "keele-start-back")
    assert client.post(f"/exams/{exam_id}/proms/{prom_id}/hand").status_code == 303
    assert client.get("/patients").status_code == 403
    return client, exam_id, prom_id


def _return(client, prom_id):
    url = continue_url(client.post(f"/proms/{prom_id}/return"))
    back = requests.get(url, allow_redirects=False, timeout=10)
    parts = urllib.parse.urlsplit(back.headers["Location"])
    return client.get(f"{parts.path}?{parts.query}"), url


def test_an_sso_clinician_returns_after_logging_in_again_at_the_provider(
        app, op) -> None:  # noqa: F811
    op.configure(signed_in_at=int(time.time()) - 3600)
    client, exam_id, prom_id = _handed(app, op)
    back, authorize = _return(client, prom_id)
    assert back.status_code == 303, back.get_data(as_text=True)
    assert back.headers["Location"] == f"/exams/{exam_id}/proms/{prom_id}"
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert (query["prompt"], query["max_age"]) == ("login", "0")
    assert client.get("/patients").status_code == 200


def test_a_provider_that_does_not_ask_again_leaves_patient_mode_on(app, op) -> None:  # noqa: F811
    op.configure(signed_in_at=int(time.time()) - 3600, step_up=False)
    client, _, prom_id = _handed(app, op)
    refused, _ = _return(client, prom_id)
    assert refused.status_code == 403
    assert "stays in patient mode" in refused.get_data(as_text=True)
    assert client.get("/patients").status_code == 403


def test_a_signature_started_before_the_hand_over_cannot_finish_in_patient_mode(
        app, op) -> None:  # noqa: F811
    op.configure(signed_in_at=int(time.time()) - 3600)
    client = app.test_client()
    _sign_in(client, op)
    exam_id, version = pages.ready_exam(client)
    url = continue_url(client.post(f"/exams/{exam_id}/sign/elsewhere",
                                   data={"version": version}))
    prom_id = add(client, exam_id, "keele-start-back")
    assert client.post(f"/exams/{exam_id}/proms/{prom_id}/hand").status_code == 303
    back = requests.get(url, allow_redirects=False, timeout=10)
    parts = urllib.parse.urlsplit(back.headers["Location"])
    refused = client.get(f"{parts.path}?{parts.query}")
    assert refused.status_code == 403 and "patient mode" in refused.get_data(as_text=True)
    assert store_mod.from_app(app).exam(exam_id).state == "draft"  # nothing signed
    assert client.get("/sso/stmary?next=/patients").status_code == 403  # nor a new sign-in
