"""Security plumbing of plugin/web/security.py: secret key, CSRF, response headers.

The tablet pages do not exist yet, so each test app gets a throwaway blueprint with
one page and one form post; what matters is that the protection applies to any page
of the app and never to the token-less FHIR API.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import stat
from pathlib import Path

import pytest
from flask import Blueprint, Flask, render_template_string

from plugin import create_app
from plugin.web import cds_hooks, security
from tests.support.signin import signed_in

EXTRACT = "/fhir/QuestionnaireResponse/$extract"
ANSWERS = {"slr.right.onset-angle": 35, "slr.right.response": "leg-pain-below-knee"}
FORM_PAGE = """<!doctype html><html lang="en"><head><title>form</title></head><body><main>
<form method="post" action="/demo/save">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button>Save</button></form></main></body></html>"""


def _demo_blueprint() -> Blueprint:
    """A page with a form, and the post it makes: stands in for the tablet pages."""
    bp = Blueprint("demo", __name__, url_prefix="/demo")

    @bp.get("/form")
    def form() -> str:
        return render_template_string(FORM_PAGE)

    @bp.post("/save")
    def save() -> dict[str, bool]:
        return {"saved": True}

    bp.add_url_rule("/callback", view_func=_callback, methods=["POST"])
    return bp


def _callback() -> dict[str, bool]:
    """A view marked exempt with csrf.exempt (in _app), as a webhook would be."""
    return {"called": True}


def _fhir_like_rule() -> dict[str, bool]:
    return {"fhir": True}


def _lookalike_rule() -> dict[str, bool]:
    return {"fhir": False}


def _app(tmp_path: Path, **config: object) -> Flask:
    # Database, key and instance folder in tmp_path: never the checkout's instance/.
    settings = {"TESTING": True, "SECRET_KEY": "k" * 64,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'exam.sqlite3'}", **config}
    app = create_app(settings)
    app.instance_path = str(tmp_path / "instance")
    csrf = security.init_app(app)
    assert security.init_app(app) is csrf  # idempotent: create_app calls it too
    csrf.exempt(_callback)
    app.register_blueprint(_demo_blueprint())
    # Under /fhir but outside the fhir_api blueprint, and a path that only looks alike.
    app.add_url_rule("/fhir/extra", "fhir_extra", _fhir_like_rule, methods=["POST"])
    app.add_url_rule("/fhirish", "fhirish", _lookalike_rule, methods=["POST"])
    return app


def _bare_app(tmp_path: Path, **config: object) -> Flask:
    """No knowledge loaded (~0.5 s saved): enough for the secret key checks."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(config)
    security.init_app(app)
    return app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One app for the tests that only send requests (each client has its own cookies)."""
    return _app(tmp_path_factory.mktemp("security"))


@pytest.fixture()
def client(app: Flask):  # type: ignore[no-untyped-def]
    """Signed in, sending no CSRF token unless the test does."""
    return signed_in(app, csrf_header=False)


def _token(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/demo/form").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


# --- headers --------------------------------------------------------------------------

def _assert_security_headers(headers) -> None:  # type: ignore[no-untyped-def]
    assert headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Permissions-Policy"] == "camera=(), microphone=(), geolocation=()"


def test_a_page_carries_the_security_headers_and_is_not_cached(client) -> None:
    response = client.get("/demo/form")
    assert response.status_code == 200
    _assert_security_headers(response.headers)
    assert response.headers["Cache-Control"] == "no-store"


def test_fhir_responses_carry_the_headers_and_keep_their_own(client) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    _assert_security_headers(response.headers)
    assert response.mimetype == "application/fhir+json"
    assert "Cache-Control" not in response.headers  # only pages are no-store
    refused = client.get(EXTRACT)  # 405: the API's own Allow header survives
    assert refused.status_code == 405 and "POST" in refused.headers["Allow"]
    _assert_security_headers(refused.headers)


def test_headers_a_response_sets_itself_are_kept(tmp_path: Path) -> None:
    app = _app(tmp_path)

    @app.after_request
    def _tag(response):  # type: ignore[no-untyped-def]  # as a view setting ETag would
        response.headers["ETag"] = '"v1"'
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    response = app.test_client().get("/fhir/metadata")
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"  # deliberate, not replaced


def test_error_responses_carry_the_headers_too(client) -> None:
    _assert_security_headers(client.get("/fhir/no-such-thing").headers)
    _assert_security_headers(client.get("/no-such-page").headers)


def test_the_csp_forbids_inline_code_and_foreign_origins() -> None:
    policy = security.CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "*" not in policy and "http" not in policy


# --- CSRF -----------------------------------------------------------------------------

def test_a_form_post_without_a_token_gets_a_clear_page(client) -> None:
    response = client.post("/demo/save", data={"x": "1"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "This page has expired" in page and "Reload the page and try again" in page
    assert '<html lang="en">' in page and "<title>" in page
    _assert_security_headers(response.headers)


def test_a_script_post_without_a_token_gets_json(client) -> None:
    by_body = client.post("/demo/save", json={"x": 1})
    by_accept = client.post("/demo/save", data={"x": "1"},
                            headers={"Accept": "application/json"})
    for response in (by_body, by_accept):
        assert response.status_code == 400
        body = response.get_json()
        assert body["error"] == "csrf"
        assert "expired" in body["message"]


def test_a_wrong_token_is_refused_like_a_missing_one(client) -> None:
    _token(client)  # a session exists, but the token sent is not its token
    response = client.post("/demo/save", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert "This page has expired" in response.get_data(as_text=True)


def test_a_valid_token_passes_as_form_field_or_header(client) -> None:
    token = _token(client)
    as_field = client.post("/demo/save", data={"csrf_token": token})
    as_header = client.post("/demo/save", json={"x": 1}, headers={"X-CSRFToken": token})
    assert as_field.status_code == 200 and as_field.get_json() == {"saved": True}
    assert as_header.status_code == 200 and as_header.get_json() == {"saved": True}


def test_a_browser_session_writing_to_the_fhir_api_needs_the_token(client) -> None:
    """The API is exempt from the blanket CSRF check (token clients send no cookie), but
    a write that rides on the session cookie must prove it comes from our page."""
    refused = client.post(EXTRACT, json=ANSWERS)
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf"
    response = client.post(EXTRACT, json=ANSWERS, headers={"X-CSRFToken": _token(client)})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["resourceType"] == "Parameters"


def test_the_exemption_follows_the_path_not_the_blueprint(app: Flask, client) -> None:
    anonymous = app.test_client()
    outside = anonymous.post("/fhir/extra", json={})  # the guard answers, not CSRF
    assert outside.status_code == 401 and outside.get_json()["resourceType"] == "OperationOutcome"
    assert client.post("/fhir/extra", json={},
                       headers={"X-CSRFToken": _token(client)}).get_json() == {"fhir": True}
    lookalike = anonymous.post("/fhirish", json={})
    assert lookalike.status_code == 400 and lookalike.get_json()["error"] == "csrf"


def test_views_marked_exempt_need_no_token(client) -> None:
    assert client.post("/demo/callback").get_json() == {"called": True}


def test_csrf_can_be_switched_off_for_other_tests(tmp_path: Path) -> None:
    app = _app(tmp_path, WTF_CSRF_ENABLED=False)
    assert signed_in(app).post("/demo/save").get_json() == {"saved": True}


def test_every_state_changing_machine_api_route_is_exempt(tmp_path: Path) -> None:
    """A guard for routes added later: none under /fhir or /cds-services (the machine
    APIs, MACHINE_PREFIXES) may ever ask for a token."""
    app = _app(tmp_path)
    if "cds_hooks" not in app.blueprints:  # until create_app registers it
        app.register_blueprint(cds_hooks.bp)
    app.add_url_rule("/cds-services-ish", "cds_lookalike", _lookalike_rule, methods=["POST"])
    client = app.test_client()  # as a token client: no session cookie
    checked = dict.fromkeys(("/fhir", "/cds-services"), 0)
    for rule in app.url_map.iter_rules():
        prefix = next((p for p in checked
                       if rule.rule == p or rule.rule.startswith(p + "/")), None)
        if prefix is None:
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            url = re.sub(r"<[^>]+>", "x", rule.rule)
            response = client.open(url, method=method, data=b"{}",
                                   content_type="application/fhir+json")
            assert "csrf" not in response.get_data(as_text=True).lower(), (method, url)
            checked[prefix] += 1
    assert checked["/fhir"] >= 2  # $extract and $assess at least
    assert checked["/cds-services"] >= 2  # the service call and its feedback
    lookalike = client.post("/cds-services-ish", json={})
    assert lookalike.status_code == 400 and lookalike.get_json()["error"] == "csrf"


def test_over_https_the_token_needs_a_same_origin_referer(app: Flask) -> None:
    """Why Referrer-Policy is same-origin, not no-referrer: flask-wtf (WTF_CSRF_SSL_STRICT)
    refuses an HTTPS post without a same-origin Referer, and under no-referrer browsers
    would send none even to our own origin."""
    base = "https://tablet.example"
    client = signed_in(app, csrf_header=False, base_url=base)
    page = client.get("/demo/form", base_url=base).get_data(as_text=True)
    token = re.search(r'value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    without = client.post("/demo/save", base_url=base, data={"csrf_token": token})
    with_referer = client.post("/demo/save", base_url=base, data={"csrf_token": token},
                               headers={"Referer": base + "/demo/form"})
    assert without.status_code == 400
    assert with_referer.status_code == 200


def test_templates_can_call_csrf_token(app: Flask) -> None:
    with app.test_request_context("/"):
        token = render_template_string("{{ csrf_token() }}")
    assert len(token) > 20


# --- session cookie -------------------------------------------------------------------

def test_the_session_cookie_is_httponly_secure_and_samesite_lax(app: Flask) -> None:
    response = app.test_client().get("/login")  # issuing a token starts the session
    cookies = response.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith("session=")]
    assert len(session) == 1, cookies
    flags = {part.strip().lower() for part in session[0].split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax"} <= flags, session[0]


# --- secret key -----------------------------------------------------------------------

def test_the_secret_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = _bare_app(tmp_path, SECRET_KEY="")
    key_file = tmp_path / "instance" / "secret_key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.config["SECRET_KEY"]
    assert len(key) == 64 and key_file.read_text().strip() == key

    second = _bare_app(tmp_path, SECRET_KEY="")
    assert second.config["SECRET_KEY"] == key  # a restart keeps sessions valid
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret_key"]  # no temp left


def test_a_configured_secret_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    app = _bare_app(tmp_path, SECRET_KEY="configured-" + "x" * 40)
    assert app.config["SECRET_KEY"] == "configured-" + "x" * 40
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_a_truncated_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("short\n")
    with pytest.raises(RuntimeError, match="no usable secret key"):
        security.load_or_create_secret_key(key_file)


def _race(path: str, start, results) -> None:  # type: ignore[no-untyped-def]
    start.wait()
    results.put(security.load_or_create_secret_key(Path(path)))


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """As gunicorn workers would: all start at once, all must sign with the same key."""
    context = multiprocessing.get_context("spawn")  # no fork of a threaded pytest
    start, results = context.Event(), context.Queue()
    path = str(tmp_path / "keys" / "secret_key")
    workers = [context.Process(target=_race, args=(path, start, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    start.set()
    keys = {results.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    assert len(keys) == 1
    assert Path(path).read_text().strip() == keys.pop()
    assert os.listdir(tmp_path / "keys") == ["secret_key"]


def test_init_app_is_idempotent(app: Flask) -> None:
    before = (len(app.after_request_funcs[None]), len(app.before_request_funcs[None]))
    assert security.init_app(app) is app.extensions["security"]
    after = (len(app.after_request_funcs[None]), len(app.before_request_funcs[None]))
    assert before == after


# --- framing by the EHR ---------------------------------------------------------------

def test_only_the_configured_ehr_origins_may_frame_the_pages(tmp_path: Path) -> None:
    app = create_app({"TESTING": True, "SECRET_KEY": "x" * 32,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                      "FRAME_ANCESTORS": ["https://ehr.example.org/", "https://b.example"]})
    response = signed_in(app).get("/patients")
    directives = dict(d.strip().split(" ", 1)
                      for d in response.headers["Content-Security-Policy"].split(";"))
    assert directives["frame-ancestors"] == "https://ehr.example.org https://b.example"
    assert directives["script-src"] == "'self'"  # the rest of the policy is unchanged
    assert "X-Frame-Options" not in response.headers  # DENY would override the list
    # framed pages are a third-party context: the session cookie must still come back
    assert app.config["SESSION_COOKIE_SAMESITE"] == "None"
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("origin", ["*", "https://*.example.org", "http://ehr.example.org",
                                    "https://ehr.example.org/app", "ehr.example.org"])
def test_a_frame_ancestor_that_is_not_an_https_origin_stops_start_up(tmp_path: Path,
                                                                     origin: str) -> None:
    with pytest.raises(ValueError, match="FRAME_ANCESTORS"):
        create_app({"TESTING": True, "SECRET_KEY": "x" * 32,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                    "FRAME_ANCESTORS": [origin]})
