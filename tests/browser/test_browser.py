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

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import served

HERE = Path(__file__).resolve().parent
ARTIFACTS = served.ROOT / "tests" / "artifacts" / "screenshots"
SPECS = sorted(HERE.glob("*.spec.mjs"))
#: A whole spec file, browser start to close; the smoke spec takes ~3 s.
SPEC_TIMEOUT = 300


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served.serve(tmp_path_factory.mktemp("browser-service"), url_host="localhost") as base:
        yield base


@pytest.mark.parametrize(
    "spec", SPECS or [pytest.param(None, id="no-spec-files")],
    ids=lambda spec: spec.name.removesuffix(".spec.mjs") if spec else "no-spec-files")
def test_spec(spec: Path | None, service: str) -> None:
    if spec is None:
        pytest.fail(f"no browser specs (*.spec.mjs) in {HERE}: the glob matched nothing")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (scripts/setup installs it)")
    env = {**os.environ, "BASE_URL": service, "ARTIFACTS_DIR": str(ARTIFACTS)}
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
