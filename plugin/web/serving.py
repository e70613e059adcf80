"""How the service is served under gunicorn: its settings, and its worker's refusals.

gunicorn refuses some requests before the app sees them: a request line over its
``limit_request_line`` (414), a header over ``limit_request_field_size`` (431), a
malformed request line, header or chunk (400). By default it answers those with its own
HTML page, which no FHIR or CDS Hooks client can read. So:

- its limits are raised above the app's own (``MAX_URL_LENGTH``, ``MAX_HEADER_LENGTH``,
  checked by ``web.boundary``), so up to gunicorn's ceiling the app answers, in the
  shape of the API asked (an OperationOutcome under ``/fhir``);
- beyond that ceiling (gunicorn caps the request line at 8190 bytes) the ``Worker``
  answers with an OperationOutcome instead of HTML: the path is unknown then, and a
  machine client is the only kind that sends such a request.

The access log records the path only (``%(U)s``: no query string, it may identify a
patient); control characters in it are escaped by ``web.boundary``'s log hook.
"""
from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.sync import SyncWorker

from ..core import outcome

#: gunicorn's own limits: its ceiling for the request line (it caps the setting at
#: 8190), and room for a header above the app's MAX_HEADER_LENGTH.
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELD_SIZE = 64 * 1024
#: Path only (%(U)s): no query string or body, they may identify a patient.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
#: The requests gunicorn refuses itself: (status, reason, what to tell the client).
_REFUSALS: tuple[tuple[tuple[type[Exception], ...], int, str, str], ...] = (
    ((LimitRequestLine,), 414, "URI Too Long",
     f"The request line is longer than this server accepts ({LIMIT_REQUEST_LINE} bytes)."),
    ((LimitRequestHeaders,), 431, "Request Header Fields Too Large",
     "The request headers are larger than this server accepts."),
    # by name: the newer of these exist only in newer gunicorn releases
    (tuple(getattr(http_errors, name) for name in (
        "InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion", "InvalidHeader",
        "InvalidHeaderName", "ObsoleteFolding", "InvalidChunkSize", "ChunkMissingTerminator",
        "InvalidChunkExtension") if hasattr(http_errors, name)),
     400, "Bad Request", "The request is not valid HTTP/1.1."),
)


def configure(cfg: Any, *, host: str, port: int, workers: int) -> None:
    """Set gunicorn's configuration ``cfg`` for the service."""
    cfg.set("bind", f"{host}:{port}")
    cfg.set("workers", workers)
    cfg.set("worker_class", f"{__name__}.Worker")
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    cfg.set("limit_request_line", LIMIT_REQUEST_LINE)
    cfg.set("limit_request_field_size", LIMIT_REQUEST_FIELD_SIZE)
    if "control_socket_disable" in cfg.settings:  # gunicorn >= 25.1
        # no runtime-control socket in $HOME: nothing uses it, and two instances on one
        # host would fight over the same default path
        cfg.set("control_socket_disable", True)


class Worker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, answering the requests it refuses itself with an
    OperationOutcome rather than an HTML page (anything else as gunicorn does)."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        refusal = next((r for r in _REFUSALS if isinstance(exc, r[0])), None)
        if refusal is None:
            super().handle_error(req, client, addr, exc)
            return
        _, status, reason, message = refusal
        # the error's type only: its text quotes the request, which may name a patient
        self.log.warning("Refused a request gunicorn could not read from ip=%s: %s",
                         (addr or ("",))[0], type(exc).__name__)
        try:
            util.write_nonblock(client, response(status, reason, message))
        except Exception:  # the client left: nothing to tell it
            self.log.debug("Failed to send error message.")


def response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying an OperationOutcome, for a closing socket."""
    code = "too-long" if status in (413, 414, 431) else "structure"
    body = json.dumps(outcome.simple("error", code, message)).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body
