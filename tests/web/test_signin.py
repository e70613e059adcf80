"""Signing in and out, lock-out, idle timeout and the first account, through the pages,
and revocation seen by a second gunicorn process."""
from __future__ import annotations

import re
import time
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode

import pytest

from plugin.adapters import store as store_mod, users
from plugin.web import signin
from tests.support import served
from tests.support.cli import run
from tests.support.signin import PASSWORD, log_in, signed_in, user


#: urllib (unlike a browser on localhost) keeps Secure cookies to https; these tests talk
#: plain http to loopback.
PLAIN_HTTP = {"PLUGIN_SESSION_COOKIE_SECURE": "false"}


@pytest.fixture()
def app(make_app, database_url):
    return make_app({"DATABASE_URL": database_url})


def test_signing_in_starts_a_new_session_and_signing_out_ends_it(app) -> None:
    user(app)
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["sid"] = "planted-before-sign-in"
    assert log_in(client, "test-clinician").headers["Location"] == "/patients"
    with client.session_transaction() as cookie:
        token = cookie["sid"]
    assert token != "planted-before-sign-in"
    page = client.get("/patients")
    assert page.status_code == 200 and "Dr Ann Lee" in page.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.post("/logout", data={"csrf_token": csrf}).headers["Location"] == "/login"
    assert client.get("/patients").status_code == 302
    # the old cookie's session is gone for good, whoever replays it
    replay = app.test_client()
    with replay.session_transaction() as cookie:
        cookie["sid"] = token
    assert replay.get("/patients").status_code == 302


def test_one_message_for_unknown_user_and_wrong_password(app) -> None:
    user(app)
    wrong = log_in(app.test_client(), "test-clinician", "not the right password")
    unknown = log_in(app.test_client(), "nobody-at-all", "not the right password")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert signin.FAILED in response.get_data(as_text=True).replace("&#39;", "'")
    assert wrong.get_data(as_text=True).replace("nobody-at-all", "test-clinician") == \
        unknown.get_data(as_text=True).replace("nobody-at-all", "test-clinician").replace(
            *re.findall(r'name="csrf_token" value="([^"]+)"',
                        unknown.get_data(as_text=True) + wrong.get_data(as_text=True))[:2])


def test_five_failures_lock_the_account_even_for_the_right_password(app) -> None:
    user(app)
    client = app.test_client()
    for _ in range(users.MAX_FAILURES):
        log_in(client, "test-clinician", "not the right password")
    locked = log_in(client, "test-clinician", PASSWORD)
    assert locked.status_code == 200 and "locked for 15 minutes" in locked.get_data(as_text=True)
    assert users.by_username(store_mod.from_app(app), "test-clinician").locked_until
    assert client.get("/patients").status_code == 302


def test_an_address_trying_many_usernames_is_throttled(make_app) -> None:
    app = make_app({"WTF_CSRF_ENABLED": False})
    client = app.test_client()
    for i in range(users.ADDRESS_FAILURES):
        client.post("/login", data={"username": f"guess{i}", "password": "x" * 15})
    assert client.post("/login", data={"username": "guess", "password": "x" * 15}
                       ).status_code == 429


def test_a_disabled_users_open_session_ends(app) -> None:
    client = signed_in(app)
    assert client.get("/patients").status_code == 200
    users.disable(store_mod.from_app(app), "test-clinician", now=users.dt.datetime.now(
        users.dt.timezone.utc))
    assert client.get("/patients").status_code == 302


def test_an_idle_session_ends_and_activity_keeps_it(make_app) -> None:
    app = make_app({"SESSION_IDLE_MINUTES": 2 / 60})  # two seconds
    client = signed_in(app)
    for _ in range(3):  # an autosave or a page every second keeps it alive
        time.sleep(1)
        assert client.get("/patients").status_code == 200
    time.sleep(2.5)
    response = client.get("/patients")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_session_ends_at_its_absolute_lifetime(make_app) -> None:
    app = make_app({"SESSION_LIFETIME_HOURS": 2 / 3600})  # two seconds
    client = signed_in(app)
    time.sleep(1)
    assert client.get("/patients").status_code == 200
    time.sleep(1.5)
    assert client.get("/patients").status_code == 302


# --- the first account ---------------------------------------------------------------

def test_serve_prints_a_setup_link_that_creates_the_first_account_once(tmp_path) -> None:
    """On a fresh machine: the console shows the link; it opens the page on any worker;
    it creates an admin who is also a clinician; it never works again."""
    with served.serve(tmp_path, PLAIN_HTTP) as base:
        log = next(tmp_path.glob("serve-*.log"))
        deadline = time.monotonic() + 10
        while "/setup?token=" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        found = re.search(r"(http://\S+/setup\?token=(\S+))", log.read_text())
        assert found, log.read_text()
        assert log.read_text().count("/setup?token=") == 1
        token = found.group(2)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with opener.open(f"{base}/setup?token={token}") as response:
            page = response.read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = {"csrf_token": csrf, "token": token, "username": "ann", "name": "Dr Ann Lee",
                "identifier": "", "password": "short"}
        refused = _post(opener, f"{base}/setup", form)
        assert refused[0] == 422 and "at least 15 characters" in refused[1]
        form["password"] = PASSWORD
        status, body = _post(opener, f"{base}/setup", form)
        assert status == 200 and "Patients" in body and "Dr Ann Lee" in body
        with pytest.raises(urllib.error.HTTPError) as again:  # single use
            opener.open(f"{base}/setup?token={token}")
        with again.value as error:
            assert error.code == 404 and "not valid" in error.read().decode()
    listed = run("users", "list", env={"PLUGIN_DATABASE_URL":
                                       f"sqlite:///{tmp_path / 'exam.sqlite3'}"})
    assert "ann\tDr Ann Lee\tadmin,clinician\tactive" in listed.stdout


def _post(opener, url, form):  # type: ignore[no-untyped-def]
    try:
        with opener.open(url, data=urlencode(form).encode()) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_the_setup_page_refuses_a_wrong_token(app) -> None:
    response = app.test_client().get("/setup?token=guessed")
    assert response.status_code == 404 and "not valid" in response.get_data(as_text=True)


# --- two processes -----------------------------------------------------------------------

def test_signing_out_on_one_process_ends_the_session_on_the_other(tmp_path) -> None:
    """Two gunicorn services sharing one database and secret key (two replicas behind a
    load balancer): a sign-out through one is seen by the other at once."""
    env = {**PLAIN_HTTP, "PLUGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
           "PLUGIN_SECRET_KEY": "shared-secret-for-two-replicas"}
    served.add_user(env)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with served.serve(tmp_path / "a", env) as first, served.serve(tmp_path / "b", env) as second:
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{first}/login") as response:
            page = response.read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        status, _ = _post(opener, f"{first}/login", {"csrf_token": csrf, "username": served.USERNAME,
                                                     "password": served.PASSWORD})
        assert status == 200
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)

        def patients(base: str) -> str:
            request = urllib.request.Request(f"{base}/patients", headers={"Cookie": cookie})
            with urllib.request.build_opener(_NoRedirect).open(request) as response:
                return str(response.status)

        assert patients(second) == "200"  # the session is the database's, not the process's
        with opener.open(f"{first}/patients") as response:
            page = response.read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        _post(opener, f"{first}/logout", {"csrf_token": csrf})
        with pytest.raises(urllib.error.HTTPError) as refused:
            patients(second)
        with refused.value as error:
            assert error.code == 302 and "/login" in error.headers["Location"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None
