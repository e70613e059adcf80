"""HTTP servers on 127.0.0.1 at a port the OS picks, the one way the test suite runs them.

The test EHR's servers (``python -m tests.support.fhir_server``, ``auth_server``) bind
one and ``serve`` it in the foreground, printing ``port <n>`` first (what
tests/support/module_server.py waits for). Tests that need a small server of their own
run one in a thread with ``Threaded``.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def bind(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threading server on 127.0.0.1 at a free port, not yet serving."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server


def base(server: ThreadingHTTPServer) -> str:
    """``http://127.0.0.1:<port>``."""
    return f"http://127.0.0.1:{server.server_address[1]}"


def serve(server: ThreadingHTTPServer) -> int:
    """Print ``port <n>`` and serve until interrupted; a ``main()``'s exit status."""
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def send(handler: BaseHTTPRequestHandler, status: int, data: bytes,
         content_type: str) -> None:
    """Answer the request ``handler`` is on with ``data``."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class Quiet(BaseHTTPRequestHandler):
    """A request handler that logs nothing (no request lines in the test output)."""

    def log_message(self, *args: object) -> None:
        pass


class Threaded:
    """A server for ``handler`` in a daemon thread, serving from construction on."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = bind(handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return base(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
