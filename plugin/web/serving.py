"""How the service is served under gunicorn: its settings, and its worker's refusals.

gunicorn refuses some requests before the app sees them: a request line over its
``limit_request_line`` (414), a header over ``limit_request_field_size`` (431), a
malformed request line, header or chunk (400). By default it answers those with its own
HTML page, which no FHIR or CDS Hooks client can read. So:

- its limits are raised above the app's own (``MAX_URL_LENGTH``, ``MAX_HEADER_LENGTH``,
  checked by ``web.boundary``), so up to gunicorn's ceiling the app answers, in the
  shape of the API asked (an OperationOutcome under ``/fhir``);
- beyond that ceiling (gunicorn caps the request line at 8190 bytes) the worker
  answers with an OperationOutcome instead of HTML: the path is unknown then, and a
  machine client is the only kind that sends such a request.

The access log records the path only (``%(U)s``: no query string, it may identify a
patient); control characters in it are escaped by ``web.boundary``'s log hook.

**Loaded once, before the fork** (``preload``): the knowledge is loaded by
``create_app`` in the master; WeasyPrint, its fonts and our stylesheets are loaded there
too (one small warm-up render), and everything the master holds is exempted from garbage
collection (``gc.freeze()``), so no worker's first request pays for them, and the
collector's full passes no longer walk the knowledge on every request's allocations.

**The renderer** (``Arbiter``): signed records' documents are rendered after the
signature, outside the request workers, by one more child of the master, forked like
them (WeasyPrint already loaded), at a lower CPU priority (nice +10) so that autosaves
and page loads on other tablets always come first. Its own process, not a thread of a
web worker: a render holds the GIL for hundreds of milliseconds, which would stall the
requests of that worker. The master starts it again within a second if it dies; a render
it left half-done is picked up again when its lease runs out (``adapters.frozen``).
"""
from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from gunicorn import util
from gunicorn.arbiter import Arbiter as GunicornArbiter
from gunicorn.http import errors as http_errors
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker
from gunicorn.workers.sync import SyncWorker

from ..core import outcome

#: gunicorn's own limits: its ceiling for the request line (it caps the setting at
#: 8190), and room for a header above the app's MAX_HEADER_LENGTH.
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELD_SIZE = 64 * 1024
#: Threads per worker (``ThreadWorker``): requests one worker serves at once.
THREADS = 4
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
    cfg.set("worker_class", f"{__name__}.ThreadWorker")
    cfg.set("threads", THREADS)
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    cfg.set("limit_request_line", LIMIT_REQUEST_LINE)
    cfg.set("limit_request_field_size", LIMIT_REQUEST_FIELD_SIZE)
    if "control_socket_disable" in cfg.settings:  # gunicorn >= 25.1
        # no runtime-control socket in $HOME: nothing uses it, and two instances on one
        # host would fight over the same default path
        cfg.set("control_socket_disable", True)


class _Refusals:
    """Answers the requests gunicorn refuses itself with an OperationOutcome rather than
    an HTML page (anything else as gunicorn does); mixed into a gunicorn worker."""

    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        refusal = next((r for r in _REFUSALS if isinstance(exc, r[0])), None)
        if refusal is None:
            super().handle_error(req, client, addr, exc)  # type: ignore[misc]
            return
        _, status, reason, message = refusal
        # the error's type only: its text quotes the request, which may name a patient
        self.log.warning("Refused a request gunicorn could not read from ip=%s: %s",
                         (addr or ("",))[0], type(exc).__name__)
        try:
            util.write_nonblock(client, response(status, reason, message))
        except Exception:  # the client left: nothing to tell it
            self.log.debug("Failed to send error message.")


class Worker(_Refusals, SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker with the refusals above (one request at a time)."""


class ThreadWorker(_Refusals, GThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker with the refusals above: what ``serve`` runs.

    A request mostly waits: on the database (an audited read is a commit) or on the
    Argon2id hash of a signature's password re-entry (argon2-cffi releases the GIL for
    its ~0.5-1 s). With one request per worker, two tablets signing held both workers
    and every other tablet's autosave queued behind them; with ``THREADS`` per worker
    the autosave runs while the hash computes."""


def response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying an OperationOutcome, for a closing socket."""
    code = "too-long" if status in (413, 414, 431) else "structure"
    body = json.dumps(outcome.simple("error", code, message)).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def preload() -> None:
    """Load WeasyPrint, its fonts and our stylesheets now (in the master, before the
    fork), then freeze what the master holds out of the garbage collector's reach."""
    from ..adapters.documents import pdf, render

    pdf.render('<html lang="en"><title>warm-up</title><p>warm-up</p></html>',
               stylesheets=render.STYLESHEETS["summary"])
    for names in render.STYLESHEETS.values():
        for name in names:
            pdf.stylesheet(name)
    gc.collect()
    gc.freeze()


#: Nice increment of the renderer: the request workers go first on a busy machine.
RENDERER_NICENESS = 10


class Arbiter(GunicornArbiter):  # type: ignore[misc]
    """gunicorn's master, also keeping one renderer process alive (``renderer``: the
    loop it runs, in the forked child; None: no renderer)."""

    def __init__(self, app: Any, renderer: Callable[[], None] | None = None) -> None:
        super().__init__(app)
        self.renderer = renderer
        self.renderer_pid: int | None = None

    def manage_workers(self) -> None:
        super().manage_workers()
        self.keep_renderer()

    def keep_renderer(self) -> None:
        """Start the renderer, or start it again when it has stopped (gunicorn's reaper
        collects every child, so a stopped one is simply no longer there)."""
        if self.renderer is None:
            return
        if self.renderer_pid is not None and self.renderer_pid not in self.WORKERS:
            try:
                os.kill(self.renderer_pid, 0)
                return
            except ProcessLookupError:
                self.log.warning("the document renderer stopped; starting another")
        pid = os.fork()
        if pid:
            self.renderer_pid = pid
            return
        self._run_renderer()

    def _run_renderer(self) -> None:  # pragma: no cover - runs in the forked child
        for number in (*self.SIGNALS, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        for listener in self.LISTENERS:
            listener.close()
        os.nice(RENDERER_NICENESS)
        util._setproctitle(f"renderer [{self.proc_name}]")
        code = 0
        try:
            assert self.renderer is not None
            self.renderer()
        except Exception as error:  # noqa: BLE001 - the class only: never PHI in logs
            logging.getLogger(__name__).error("the document renderer failed: %s",
                                              type(error).__name__)
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)

    def stop(self, graceful: bool = True) -> None:
        if self.renderer_pid is not None:
            try:
                os.kill(self.renderer_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.renderer_pid = None
        super().stop(graceful)


def renderer_for(app: Any) -> Callable[[], None] | None:
    """The renderer's loop for ``app`` (None when DOCUMENTS_RENDERER is off)."""
    if not app.config.get("DOCUMENTS_RENDERER", True):
        return None

    def run() -> None:
        from .. import cli_documents
        from ..adapters import store as storage

        master = os.getppid()
        store = storage.from_app(app)
        store.dispose()  # no connection shared with the master or a worker
        # ends with its master (even one killed outright): never an orphan renderer
        cli_documents.loop(store, app.config, worker_id=f"{socket.gethostname()}:"
                           f"{os.getpid()}:renderer", watch=True,
                           alive=lambda: os.getppid() == master)
    return run
