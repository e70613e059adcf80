"""Render every failure under /fhir as an OperationOutcome, once, here.

Bad input is the caller's problem and gets a 4xx naming what was wrong; a 500 only ever
comes from the last-resort handler, which logs the exception type and where it was
raised, never its message or the request body (either may hold patient data).

Outside ``/fhir`` (future tablet pages) errors keep Flask's own rendering: a browser
wants a page, not an OperationOutcome.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions

from ..core import outcome
from ..errors import (AnswerError, GoneError, InputError, NotFoundError, PluginError,
                      UnavailableError)

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"
#: OperationOutcome issue codes (R4 IssueType) for the HTTP errors werkzeug raises.
_HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
               413: "too-long", 414: "too-long", 415: "not-supported", 431: "too-long"}


def fhir_response(resource: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A FHIR JSON response (media type application/fhir+json)."""
    return Response(json.dumps(resource), status=status, mimetype=FHIR_JSON, headers=headers)


def status_of(error: PluginError) -> int:
    """The HTTP status for an error: 422 for answers that break the Questionnaire."""
    if isinstance(error, AnswerError):
        return 422
    if isinstance(error, InputError):
        return error.status
    if isinstance(error, GoneError):
        return 410
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, UnavailableError):
        return 503
    return 500


def init_app(app: Flask) -> None:
    """Register the handlers on ``app`` (they must be app-wide to see routing 404/405)."""

    @app.errorhandler(PluginError)
    def _plugin_error(error: PluginError) -> Response | HTTPException:
        status = status_of(error)
        if not _under_fhir():
            return default_exceptions.get(status, InternalServerError)(error.message)
        return fhir_response(outcome.from_error(error), status)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response | HTTPException:
        status = error.code or 500
        if status < 400 or not _under_fhir():
            return error
        code = _HTTP_CODES.get(status, "invalid" if status < 500 else "exception")
        message = error.description or error.name
        if status == 413:
            message = ("The request body is larger than this server accepts "
                       f"({request.max_content_length} bytes).")
        # keep e.g. Allow on a 405; the body and its type are ours
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return fhir_response(outcome.simple("error", code, message), status, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response | HTTPException:
        log_unexpected(error)
        if not _under_fhir():
            return InternalServerError()
        return fhir_response(outcome.simple("fatal", "exception",
                                            "Internal error; nothing was stored."), 500)


def log_unexpected(error: Exception) -> None:
    """Log a failure no handler expected: the route pattern, not the path (a path may
    carry an id); the code location, not the message (a message may quote the input)."""
    rule = request.url_rule.rule if request.url_rule else "(no route)"
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    log.error("unexpected %s while handling %s %s (at %s)", type(error).__name__,
              request.method, rule,
              " <- ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(frames)))


def _under_fhir() -> bool:
    path = request.path
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")
