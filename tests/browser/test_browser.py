"""Run each browser spec (tests/browser/*.spec.mjs) as one pytest test.

One service for the session, started as deployed (gunicorn, its own database), and
one ``node --test`` process per spec file, so a spec can never lean on another's
state: each creates the patients it needs. The specs drive Debian's Chromium through
playwright-core (see harness.mjs); screenshots land in tests/artifacts/screenshots.

The browser talks to ``http://localhost:PORT``: Chromium treats localhost as a secure
context and stores and returns the session cookie although it is ``Secure`` (as
production sets it), so the tests run with the production cookie flags.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import served
from tests.support.ehr import running_ehr

HERE = Path(__file__).resolve().parent
ARTIFACTS = served.ROOT / "tests" / "artifacts" / "screenshots"
SPECS = sorted(HERE.glob("*.spec.mjs"))
#: A whole spec file, browser start to close; the smoke spec takes ~3 s.
SPEC_TIMEOUT = 300


#: Specs that run against the service launched from the test EHR (see ``ehr_service``).
EHR_SPECS = {"launch.spec.mjs"}
#: Specs that run against a service whose sign-ins end after a few idle seconds.
SHORT_SESSION_SPECS = {"session.spec.mjs"}
SHORT_IDLE_MINUTES = 0.1
#: The app's client id at the test EHR.
CLIENT_ID = "posterior-thigh-exam"
EHR_PATIENT = {"resourceType": "Patient", "id": "ehr-p-7", "birthDate": "1971-06-15",
               "name": [{"family": "Launchova", "given": ["Lea"]}],
               "identifier": [{"system": "urn:example:ehr-mrn", "value": "L-7"}]}
EHR_PRACTITIONER = {"resourceType": "Practitioner", "id": "ehr-dr-9",
                    "name": [{"family": "Launch", "given": ["Lena"]}]}
EHR_ENCOUNTER = {"resourceType": "Encounter", "id": "ehr-e-7", "status": "in-progress",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "AMB"}, "subject": {"reference": "Patient/ehr-p-7"}}


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser-service")
    settings = {"PLUGIN_DATABASE_URL": f"sqlite:///{folder / 'exam.sqlite3'}",
                "PLUGIN_SECRET_KEY": "test-" + secrets.token_hex(32)}
    served.add_user(settings)  # the specs sign in as this clinician (harness.signIn)
    with served.serve(folder, settings, url_host="localhost") as base:
        yield base


@pytest.fixture(scope="session")
def short_session_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Sign-ins end after SHORT_IDLE_MINUTES (6 s) idle: the expired-session spec."""
    folder = tmp_path_factory.mktemp("short-session-service")
    settings = {"PLUGIN_DATABASE_URL": f"sqlite:///{folder / 'exam.sqlite3'}",
                "PLUGIN_SECRET_KEY": "test-" + secrets.token_hex(32),
                "PLUGIN_SESSION_IDLE_MINUTES": str(SHORT_IDLE_MINUTES)}
    served.add_user(settings)
    with served.serve(folder, settings, url_host="localhost") as base:
        yield base


@pytest.fixture(scope="session")
def ehr_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The service as an EHR would run it: launched from the test EHR (SMART), writing
    back to it, with the delivery worker (``python -m plugin deliver``) beside it
    sharing its database and secret key (it unseals the launch tokens)."""
    folder = tmp_path_factory.mktemp("ehr-service")
    with running_ehr(folder) as ehr:
        settings = {
            "PLUGIN_DATABASE_URL": f"sqlite:///{folder / 'exam.sqlite3'}",
            "PLUGIN_SECRET_KEY": "test-" + secrets.token_hex(32),
            "PLUGIN_SMART_CLIENTS": json.dumps({ehr.fhir_base: {"client_id": CLIENT_ID}}),
            "PLUGIN_EHR_FHIR_BASE_URL": ehr.fhir_base,
            "PLUGIN_DELIVERY_BACKOFF_SECONDS": "1",
        }
        served.add_user(settings)
        with served.serve(folder, settings, url_host="localhost") as base:
            # the launch signs the EHR's practitioner in; signing confirms at the EHR
            # (its answer comes back to /sso/callback)
            ehr.register_client(CLIENT_ID, [f"{base}/launch/callback", f"{base}/sso/callback"])
            ehr.configure(fhir_user="Practitioner/ehr-dr-9",
                          user_claims={"name": "Dr Lena Launch"})
            ehr.seed(EHR_PATIENT, EHR_ENCOUNTER, EHR_PRACTITIONER)
            log = folder / "deliver.log"
            with log.open("wb") as sink:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "plugin", "deliver"], cwd=served.ROOT,
                    env={**os.environ, **settings}, stdout=sink, stderr=subprocess.STDOUT)
            try:
                yield {"BASE_URL": base, "EHR_FHIR_BASE": ehr.fhir_base,
                       "EHR_AUTH_BASE": ehr.auth_base}
            finally:
                worker.terminate()
                worker.wait(timeout=10)


@pytest.mark.parametrize(
    "spec", SPECS or [pytest.param(None, id="no-spec-files")],
    ids=lambda spec: spec.name.removesuffix(".spec.mjs") if spec else "no-spec-files")
def test_spec(spec: Path | None, request: pytest.FixtureRequest) -> None:
    if spec is None:
        pytest.fail(f"no browser specs (*.spec.mjs) in {HERE}: the glob matched nothing")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (scripts/setup installs it)")
    if spec.name in EHR_SPECS:
        urls = request.getfixturevalue("ehr_service")
    elif spec.name in SHORT_SESSION_SPECS:
        urls = {"BASE_URL": request.getfixturevalue("short_session_service"),
                "IDLE_SECONDS": str(SHORT_IDLE_MINUTES * 60)}
    else:
        urls = {"BASE_URL": request.getfixturevalue("service")}
    env = {**os.environ, **urls, "ARTIFACTS_DIR": str(ARTIFACTS), "USERNAME": served.USERNAME,
           "PASSWORD": served.PASSWORD, "DISPLAY_NAME": served.DISPLAY_NAME}
    # Its own process group, so a timeout also ends the test-file subprocess node
    # spawns and the Chromium it started, not just the node we launched.
    process = subprocess.Popen(
        [node, "--test", "--test-reporter=spec", spec.name], cwd=HERE, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=SPEC_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{spec.name} did not finish within {SPEC_TIMEOUT} s:\n"
                    f"{output.decode(errors='replace')}")
    if process.returncode != 0:
        pytest.fail(f"{spec.name} failed (node exit {process.returncode}):\n"
                    f"{output.decode(errors='replace')}", pytrace=False)
    print(output.decode(errors="replace"))  # shown with -s or -rP (the tap count, ...)
