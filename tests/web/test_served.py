"""The service as deployed: ``python -m plugin serve`` under gunicorn, over real HTTP.

One test, start to stop, so nothing depends on test order: it must come up, answer
metadata and $extract, refuse bad input with an OperationOutcome, keep query strings out
of its access log, and stop cleanly on SIGTERM.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.served import (PLAIN_HTTP, ROOT, add_user, free_port, signed_in_opener,
                                  wait_until_ready)

EXTRACT = "/fhir/QuestionnaireResponse/$extract"


def _post(url: str, body: bytes, content_type: str = "application/fhir+json",
          opener: Any = None) -> Any:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    return (opener or urllib.request.build_opener()).open(request, timeout=10)


def test_serve_runs_gunicorn_over_real_http(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**PLAIN_HTTP, "PLUGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'exam.sqlite3'}",
           "PLUGIN_SECRET_KEY": "served-test-secret"}
    add_user(env)
    with log.open("wb") as sink:  # a file, not a pipe: an unread pipe could block the server
        process = subprocess.Popen(
            [sys.executable, "-m", "plugin", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, **env})
    try:
        wait_until_ready(base, process, log)
        with pytest.raises(urllib.error.HTTPError) as anonymous:  # the API needs a user
            _post(base + EXTRACT, b"{}")
        with anonymous.value as error:
            assert error.code == 401 and error.headers["WWW-Authenticate"]
        opener = signed_in_opener(base)

        with urllib.request.urlopen(f"{base}/fhir/metadata", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("application/fhir+json")
            assert json.load(response)["fhirVersion"] == "4.0.1"

        answers = {"slr.right.onset-angle": 35, "slr.right.response": "leg-pain-below-knee"}
        with _post(base + EXTRACT, json.dumps(answers).encode(), opener=opener) as response:
            assert response.status == 200
            bundle = json.load(response)["parameter"][0]["resource"]
        assert bundle["type"] == "transaction"
        assert sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"]) == 2

        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(base + EXTRACT, b"{oops", "application/json", opener=opener)
        with refused.value as error:
            assert error.code == 400
            assert json.load(error)["resourceType"] == "OperationOutcome"

        with urllib.request.urlopen(f"{base}/fhir/Questionnaire?url=secret-marker",
                                    timeout=5) as response:
            assert json.load(response)["total"] == 0
    finally:
        process.terminate()
        try:
            returncode = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    output = log.read_text(errors="replace")
    assert returncode == 0, output
    assert "gunicorn" in output.lower() and "Booting worker" in output
    assert '"GET /fhir/Questionnaire"' in output  # the access log is on ...
    assert "secret-marker" not in output  # ... without query strings
