"""The one door every request comes through: size, text and JSON checked before any view.

``init_app`` installs, ahead of every other hook (CSRF included, which reads forms):

- **Sizes.** A request target longer than ``MAX_URL_LENGTH`` is a 414, a header line
  longer than ``MAX_HEADER_LENGTH`` a 431, a body over ``MAX_CONTENT_LENGTH`` a 413
  however it is sent: werkzeug checks a declared Content-Length, but a chunked body it
  would silently cut at the limit and process, so it is read here, bounded, first.
  gunicorn's own limits are set above these (``web.serving``), so the app, not
  gunicorn's HTML page, answers.
- **Text.** No query parameter, header or form field may hold a NUL (PostgreSQL text
  refuses it) or a lone surrogate (a UTF-8 encoder refuses it): 400 naming the field.
- **JSON.** ``json_body`` is how views read a JSON body: parsed by ``core.json_input``
  (bounded depth, finite numbers, text any encoder can write), every refusal naming
  where it was found.
- **Logs.** Control characters in anything logged are escaped (``\\r``, ``\\n``,
  ``\\x00``), so a decoded ``%0d%0a`` in a path cannot start a forged log line.

Refusals are raised (InputError or werkzeug's HTTPException) and rendered by the area's
own handler: an OperationOutcome under ``/fhir`` (``web.errors``), the CDS Hooks error
JSON under ``/cds-services``, a message for pages.
"""
from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import (RequestEntityTooLarge, RequestHeaderFieldsTooLarge,
                                 RequestURITooLarge)

from ..core import json_input
from ..errors import InputError

EXTENSION_KEY = "plugin.boundary"
#: Media types of the JSON bodies the APIs read.
JSON_TYPES = ("application/json", "application/fhir+json")
#: Read a chunked body in pieces of this size (it is refused once past the limit).
_CHUNK = 64 * 1024


def init_app(app: Flask) -> None:
    """Screen every request before any other ``before_request`` hook runs (once)."""
    if EXTENSION_KEY in app.extensions:
        return
    app.extensions[EXTENSION_KEY] = True
    app.before_request_funcs.setdefault(None, []).insert(0, screen)
    install_log_escaping()


def screen() -> None:
    """Refuse a request whose target, headers, query or body break the limits above."""
    config = request.environ
    target = config.get("RAW_URI") or config.get("REQUEST_URI") or request.full_path
    limit = int(_setting("MAX_URL_LENGTH"))
    if len(target) > limit:
        raise RequestURITooLarge(f"The request URL is longer than this server accepts "
                                 f"({limit} characters).")
    header_limit = int(_setting("MAX_HEADER_LENGTH"))
    for name, value in request.headers.items():
        if len(name) + len(value) + 2 > header_limit:
            raise RequestHeaderFieldsTooLarge(
                f"A request header is longer than this server accepts ({header_limit} "
                "bytes).")
        _refuse_text(value, f"header {name}")
    for name, value in request.args.items(multi=True):
        _refuse_text(name, "query parameter name")
        _refuse_text(value, f"query parameter {name}", name)
    _bounded_body()
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            _refuse_text(name, "form field name")
            _refuse_text(value, f"form field {name}", name)


def json_body(what: str = "The request body", *,
              media_types: Sequence[str] | None = JSON_TYPES) -> Any:
    """The request body as strictly checked JSON; an InputError says exactly why not
    (415 for a body that is not JSON when ``media_types`` is given, else 400)."""
    if media_types is not None and request.mimetype not in media_types:
        raise InputError(f"Send JSON ({' or '.join(media_types)}), not "
                         f"{request.mimetype or 'a body without Content-Type'}.", status=415,
                         code="not-supported")
    raw = request.get_data(cache=True)  # 413 first when the body is too large
    if not raw.strip():
        raise InputError(f"{what} is empty.", code="required")
    data = json_input.parse(raw, what)
    if data is None:
        raise InputError(f"{what} is JSON null; send a JSON object.")
    return data


def _setting(name: str) -> Any:
    from flask import current_app

    return current_app.config[name]


def _refuse_text(value: str, where: str, expression: str | None = None) -> None:
    problem = json_input.text_problem(value)
    if problem:
        shown = json_input.printable(where)
        raise InputError(f"The {shown} {problem}.",
                         expression=json_input.printable(expression) if expression else None)


def _bounded_body() -> None:
    """A body sent without Content-Length (chunked) read here, at most the limit: over
    it is a 413; under it the body is handed on as if its length had been declared."""
    environ = request.environ
    limit = request.max_content_length
    if limit is None or request.content_length is not None \
            or not environ.get("wsgi.input_terminated"):
        return  # a declared length is werkzeug's to check; no body is read otherwise
    stream = environ["wsgi.input"]
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


# --- logs -------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x1f\x7f\u2028\u2029]")


def escape_control(text: str) -> str:
    """``text`` on one line: control characters as Python escapes (``\\r``, ``\\x00``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def install_log_escaping() -> None:
    """Escape control characters in every log record's message and arguments, whoever
    logs it (the app, gunicorn's access and error logs): one place, so no log line can
    be forged by what a client sends. Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "escapes_control", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = escape_control(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_escaped(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = _EscapedMapping(record.args)
        return record

    factory.escapes_control = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_control(value)
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value)
    return escape_control(text) if _CONTROL.search(text) else value


class _EscapedMapping(Mapping):  # type: ignore[type-arg]
    """A log record's mapping argument (gunicorn's access-log atoms) with its values
    escaped as they are read; lookups (``{header}i``) stay the original's."""

    def __init__(self, original: Mapping[str, Any]) -> None:
        self._original = original

    def __getitem__(self, key: str) -> Any:
        return _escaped(self._original[key])

    def __iter__(self) -> Any:
        return iter(self._original)

    def __len__(self) -> int:
        return len(self._original)
