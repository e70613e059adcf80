"""The boundary through the real gunicorn (``python -m plugin serve``), over raw sockets:
what only a real HTTP server shows (issue 13, breakages 6-8).

- 6: the access log cannot be forged: a decoded ``%0d%0a`` or ``%00`` in a path is
  escaped, never a new line or a NUL byte in the file;
- 7: a chunked body over ``MAX_CONTENT_LENGTH`` is a 413, not silently cut and processed;
- 8: an oversized request line or header under ``/fhir`` is a 414 / 431 OperationOutcome,
  whether the app answers (over its own limits) or gunicorn's worker (over gunicorn's).
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from tests.support import served

LIMIT = 64 * 1024  # MAX_CONTENT_LENGTH of the served app: small, so the test is quick
EXTRACT = "/fhir/QuestionnaireResponse/$extract"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served-boundary")
    env = {**served.PLAIN_HTTP, "PLUGIN_MAX_CONTENT_LENGTH": str(LIMIT),
           "PLUGIN_DATABASE_URL": f"sqlite:///{folder / 'exam.sqlite3'}",
           "PLUGIN_SECRET_KEY": "served-boundary-secret"}
    served.add_user(env)
    with served.serve(folder, env) as base:
        yield base, folder


def _exchange(base: str, request: bytes, *,
              chunks: list[bytes] = ()) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` (and then each of ``chunks``, chunked) on a fresh connection; the
    status, headers and body of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        try:
            sock.sendall(request)
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if chunks:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading everything: read its answer
        data = b""
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _get(base: str, target: str, extra: str = "") -> tuple[int, dict[str, str], bytes]:
    return _exchange(base, f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}"
                           "Connection: close\r\n\r\n".encode("latin-1"))


def _outcome(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    code, headers, body = answer
    assert code == status, body[:300]
    assert headers["content-type"].startswith("application/fhir+json"), headers
    resource = json.loads(body)
    assert resource["resourceType"] == "OperationOutcome"
    assert resource["issue"][0]["code"] == "too-long" or status == 413
    return resource


def _still_answers(base: str) -> None:
    code, _, body = _get(base, "/fhir/metadata")
    assert code == 200 and json.loads(body)["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize("length", [5_000, 8_100, 9_000, 60_000])
def test_8_a_long_request_line_under_fhir_is_a_414_outcome(service, length) -> None:
    """Under gunicorn's ceiling the app answers; over it the worker, never HTML."""
    base, _ = service
    _outcome(_get(base, "/fhir/Questionnaire?url=" + "x" * length), 414)
    _still_answers(base)


@pytest.mark.parametrize("length", [25_000, 70_000])
def test_8_a_long_header_under_fhir_is_a_431_outcome(service, length) -> None:
    base, _ = service
    _outcome(_get(base, "/fhir/metadata", f"X-Big: {'x' * length}\r\n"), 431)
    _still_answers(base)


def test_7_a_chunked_body_over_the_limit_is_a_413(service) -> None:
    base, _ = service
    body = json.dumps({"history.notes": "x" * int(LIMIT * 1.1)}).encode()
    head = (f"POST {EXTRACT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    _outcome(_exchange(base, head, chunks=[body[i:i + 8192]
                                           for i in range(0, len(body), 8192)]), 413)
    _still_answers(base)


def test_7_a_chunked_body_under_the_limit_is_read_whole(service) -> None:
    base, _ = service
    q = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam|1.0.0"
    body = json.dumps({"resourceType": "QuestionnaireResponse", "questionnaire": q,
                       "status": "completed", "item": [{"linkId": "slr", "item": [
                           {"linkId": "slr.left", "item": [
                               {"linkId": "slr.left.onset-angle", "text": "y" * (LIMIT // 2),
                                "answer": [{"valueInteger": 40}]}]}]}]}).encode()
    session = "".join(f"{k}: {v}\r\n"
                      for k, v in served.signed_in_opener(base).session_headers.items())
    head = (f"POST {EXTRACT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{session}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    code, _, answer = _exchange(base, head, chunks=[body[i:i + 4096]
                                                    for i in range(0, len(body), 4096)])
    assert code == 200, answer[:300]
    assert "y" * (LIMIT // 2) in answer.decode()  # the whole note, not a cut one


def test_6_the_access_log_cannot_be_forged(service) -> None:
    base, folder = service
    forged = '127.0.0.1 "GET /fhir/metadata" 200 1 1ms'
    _get(base, "/fhir/x%0d%0a" + forged.replace(" ", "%20").replace('"', "%22")
         + "%00end")
    _still_answers(base)
    log = next(folder.glob("serve-*.log"))
    deadline = time.monotonic() + 5
    while b"end" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_bytes()
    assert b"\x00" not in text
    lines = text.decode("utf-8", "replace").splitlines()
    assert not any(line.startswith(forged) for line in lines), lines[-5:]
    assert any("/fhir/x\\r\\n127.0.0.1" in line and "\\x00end" in line for line in lines), \
        lines[-5:]
