"""Render every failure under /fhir as an OperationOutcome, once, here.

Bad input is the caller's problem and gets a 4xx naming what was wrong; a 500 only ever
comes from the last-resort handler, which logs the exception type and never the
request body (it may hold patient data).
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from ..core import outcome
from ..errors import AnswerError, InputError, NotFoundError, PluginError

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}


def fhir_response(resource: dict[str, Any], status: int = 200) -> Response:
    """A FHIR JSON response (media type application/fhir+json)."""
    return Response(json.dumps(resource), status=status, mimetype=FHIR_JSON)


def status_of(error: PluginError) -> int:
    if isinstance(error, AnswerError):
        return 422
    if isinstance(error, InputError):
        return error.status
    if isinstance(error, NotFoundError):
        return 404
    return 500


def init_app(app: Flask) -> None:
    @app.errorhandler(PluginError)
    def _plugin_error(error: PluginError) -> Response:
        return fhir_response(outcome.from_error(error), status_of(error))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "invalid" if status < 500 else "exception")
        message = {413: "The request body is larger than this server accepts "
                        f"({app.config['MAX_CONTENT_LENGTH']} bytes)."}.get(
            status, error.description or error.name)
        return fhir_response(outcome.simple("error", code, message), status)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.error("unexpected %s while handling a request", type(error).__name__)
        return fhir_response(outcome.simple("fatal", "exception",
                                            "Internal error; nothing was stored."), 500)
