"""The service as deployed: `python -m plugin serve` under gunicorn, over real HTTP."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "plugin", "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/fhir/metadata", timeout=2).read()
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"service did not start:\n{process.stdout.read()}")
            time.sleep(0.2)
    yield base, process
    process.terminate()
    process.wait(timeout=15)


def test_metadata_over_http(server) -> None:
    base, _ = server
    with urllib.request.urlopen(f"{base}/fhir/metadata", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/fhir+json")
        assert json.load(response)["fhirVersion"] == "4.0.1"


def test_extract_over_http(server) -> None:
    base, _ = server
    body = json.dumps({"slr.right.onset-angle": 35, "slr.right.response": "leg-pain-below-knee"})
    request = urllib.request.Request(f"{base}/fhir/QuestionnaireResponse/$extract",
                                     data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        bundle = json.load(response)["parameter"][0]["resource"]
    assert bundle["type"] == "transaction"
    assert sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"]) == 2


def test_bad_input_over_http_is_an_outcome_not_a_500(server) -> None:
    base, _ = server
    request = urllib.request.Request(f"{base}/fhir/QuestionnaireResponse/$extract",
                                     data=b"{oops", method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.load(caught.value)["resourceType"] == "OperationOutcome"


def test_it_is_gunicorn_and_logs_no_query_strings(server) -> None:
    base, process = server
    urllib.request.urlopen(f"{base}/fhir/Questionnaire?url=secret-marker", timeout=5).read()
    process.terminate()
    output = process.communicate(timeout=15)[0]
    assert "gunicorn" in output.lower()
    assert "secret-marker" not in output
