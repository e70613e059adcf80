"""Client for the independent FHIR R4 validator (tests/conformance/validate.mjs).

Why: the product builds its resources with fhir.resources, so validating them only with
fhir.resources cannot catch a bug the two share (pydantic also coerces "35" to 35 and does not
check required terminology bindings or most invariants). The Node validator is built on
@medplum/core and the official R4 4.0.1 StructureDefinitions instead, plus the checks Medplum
skips (required bindings, R4 primitive regexes, que-2, obs-7, qty-3, per-1).

Node indexes the R4 definitions once (~1 s), so one process serves a whole test module or
session: resources go in as JSON lines on stdin, reports come back as JSON lines on stdout.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class

__all__ = ["Report", "IndependentValidator", "ValidatorUnavailable", "assert_conformant"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = REPO_ROOT / "tests" / "conformance"
SCRIPT = CONFORMANCE_DIR / "validate.mjs"


class ValidatorUnavailable(RuntimeError):
    """The Node validator cannot run (node or its npm packages missing) or died."""


@dataclass(frozen=True)
class Report:
    """What the independent validator said about one resource."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


class IndependentValidator:
    """One long-running `node tests/conformance/validate.mjs` process.

    Use as a context manager (or call close()) so the process and its pipes are released;
    pytest runs with warnings as errors, and a leaked pipe would be a ResourceWarning.
    Calls are serialised with a lock, so a validator may be shared between threads.
    """

    def __init__(self, node: str = "node") -> None:
        node_path = shutil.which(node)
        if node_path is None:
            raise ValidatorUnavailable(f"{node!r} not found on PATH: run scripts/setup")
        if not (CONFORMANCE_DIR / "node_modules" / "@medplum" / "core").is_dir():
            raise ValidatorUnavailable(
                f"{CONFORMANCE_DIR / 'node_modules'} is missing: run scripts/setup "
                "(it runs `npm ci --prefix tests/conformance`)")
        self._lock = threading.Lock()
        # stderr goes to a file, not a pipe: nobody reads it until something fails, and an
        # unread pipe could fill up and block node.
        self._stderr = tempfile.TemporaryFile()
        self._process: subprocess.Popen[str] | None = subprocess.Popen(
            [node_path, str(SCRIPT)], cwd=CONFORMANCE_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8")

    def validate(self, resource: dict[str, Any]) -> Report:
        """Validate one resource (or any JSON document); errors never raise, they are reported."""
        line = json.dumps(resource, separators=(",", ":")) + "\n"  # ASCII: no raw newlines
        with self._lock:
            process = self._process
            if process is None:
                raise ValidatorUnavailable("the validator is closed")
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(line)
                process.stdin.flush()
                answer = process.stdout.readline()
            except BrokenPipeError:
                answer = ""
            if not answer:
                raise ValidatorUnavailable(f"the validator died: {self._stderr_text()}")
        result = json.loads(answer)
        return Report(tuple(result["errors"]), tuple(result["warnings"]))

    def close(self) -> None:
        """End the node process (it exits when stdin closes) and release pipes; idempotent."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            try:
                if process.stdin is not None:
                    process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
            self._stderr.close()

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip() or "(no stderr)"

    def __enter__(self) -> IndependentValidator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def fhir_resources_errors(resource: dict[str, Any]) -> list[str]:
    """Errors of fhir.resources' R4B model for the resource (its pydantic errors, flattened)."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    try:
        cls = get_fhir_model_class(str(resource_type))
    except (KeyError, ValueError) as exc:
        return [f"resourceType: {exc}"]
    try:
        cls.model_validate(resource)
    except pydantic.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc']) or resource_type}: {err['msg']}"
                for err in exc.errors()]
    return []


def assert_conformant(validator: IndependentValidator, resource: dict[str, Any]) -> Report:
    """Assert that the resource is valid under BOTH fhir.resources and the independent validator.

    Both are always run so that the AssertionError lists every error of each; returns the
    independent validator's report (for its warnings) when there is no error.
    """
    model_errors = fhir_resources_errors(resource)
    report = validator.validate(resource)
    if model_errors or report.errors:
        name = f"{resource.get('resourceType', '?')}/{resource.get('id', '(no id)')}" \
            if isinstance(resource, dict) else repr(type(resource))
        lines = [f"fhir.resources: {e}" for e in model_errors]
        lines += [f"independent: {e}" for e in report.errors]
        raise AssertionError(f"{name} is not conformant ({len(lines)} errors):\n  "
                             + "\n  ".join(lines))
    return report
