"""The service as deployed, for tests that talk to it over real HTTP.

``serve()`` starts ``python -m plugin serve`` (gunicorn, as in production) on a free
loopback port with its own SQLite file and secret key, waits until it answers, and
stops it with SIGTERM afterwards. Its output goes to a log file, never a pipe: nobody
reads a pipe while the tests run, and a full pipe would block the server mid-test.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: How long a SIGTERM'd service may take to finish its requests before it is killed.
STOP_TIMEOUT = 10


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(base: str, process: subprocess.Popen[bytes], log: Path,
                     path: str = "/fhir/metadata", timeout: float = 30) -> None:
    """Poll ``base + path`` until it answers; fail with the service's log if it exits
    or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}{path}", timeout=2) as response:
                response.read()
            return
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"service did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)


@contextmanager
def serve(tmp_path: Path, env: Mapping[str, str] | None = None, *,
          url_host: str = "127.0.0.1") -> Iterator[str]:
    """Run the service for the duration of the ``with`` block; yields its base URL.

    It binds 127.0.0.1 only. ``url_host`` is the host name put in the URL: browsers may
    use ``localhost`` (same socket), which Chromium treats as a secure context. ``env``
    adds to or overrides the service's environment (``PLUGIN_*`` settings).
    """
    port = free_port()
    service_env = {
        **os.environ,
        "PLUGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'exam.sqlite3'}",
        # not all digits: PLUGIN_* values are read as JSON first, and must stay a string
        "PLUGIN_SECRET_KEY": "test-" + secrets.token_hex(32),
        **(env or {}),
    }
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "plugin", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=ROOT, env=service_env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process, log)
        yield f"http://{url_host}:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn's graceful shutdown), then SIGKILL after STOP_TIMEOUT seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


#: The account the served-service tests sign in with (created by ``add_user``).
USERNAME, PASSWORD, DISPLAY_NAME = "dr.lee", "a long test passphrase for the ward", "Dr Ann Lee"


def add_user(env: Mapping[str, str], username: str = USERNAME, *, role: str = "clinician",
             name: str = DISPLAY_NAME, password: str = PASSWORD) -> None:
    """Add an account with the service's own CLI (``users add``), in the database the
    settings in ``env`` name; fails the test with the CLI's message if it refuses."""
    result = subprocess.run(
        [sys.executable, "-m", "plugin", "users", "add", username, "--role", role,
         "--name", name, "--password-stdin"], cwd=ROOT, input=password + "\n",
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"users add failed: {result.stderr}")


#: urllib (unlike a browser on localhost) keeps Secure cookies for https; tests that talk
#: plain http to loopback with cookies run the service with this.
PLAIN_HTTP = {"PLUGIN_SESSION_COOKIE_SECURE": "false"}


def signed_in_opener(base: str, username: str = USERNAME, password: str = PASSWORD) -> Any:
    """A urllib opener signed in to the service at ``base`` through its login form; every
    request it makes carries the page's CSRF token in ``X-CSRFToken``."""
    import re
    from http.cookiejar import CookieJar
    from urllib.parse import urlencode

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/login", timeout=10) as response:
        page = response.read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page
    form = urlencode({"csrf_token": csrf.group(1), "username": username,
                      "password": password}).encode()
    with opener.open(f"{base}/login", data=form, timeout=10) as landed:
        assert "/login" not in landed.url, "sign-in failed"
        page = landed.read().decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token, page
    opener.addheaders = [("X-CSRFToken", token.group(1))]
    #: the same session for a raw socket request: ``Cookie`` and ``X-CSRFToken``
    opener.session_headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in jar),
                              "X-CSRFToken": token.group(1)}
    return opener
