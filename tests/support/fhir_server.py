"""A small FHIR server for the delivery tests, run as its own process on loopback.

``python -m tests.support.fhir_server STATE.json`` listens on 127.0.0.1 at a free port
and prints ``port <n>`` on its first stdout line. It implements just what write-back
needs, independently of the product's code:

- ``POST /`` with a transaction Bundle: all-or-nothing; each entry ``POST``s its
  resource, with R4 conditional-create semantics for ``request.ifNoneExist``: 0 matches
  create (201), 1 match is a no-op (200), more are 412. ``identifier=system|value``
  matches resources of that type by identifier; any other query matches the resources
  created under that same query. Answers a ``transaction-response`` Bundle.
- ``POST /_faults`` with a JSON list: the answers to give the next transactions instead,
  one each, in order: ``{"status": 500}``, ``{"status": 400, "text": "..."}`` (with an
  OperationOutcome), ``{"delay": 3}`` (wait, then process normally: the client may have
  given up, but the EHR still commits), ``{"drop": true}`` (close the connection).
- ``GET /_state``: ``{"resources": [...], "posts": n}``; ``POST /_reset``.

The state is also written to STATE.json after every change (for post-mortems).
"""
from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCK = threading.Lock()
STATE: dict[str, Any] = {"resources": [], "posts": 0, "faults": [], "bodies": []}
STATE_FILE: Path | None = None


def _save() -> None:
    if STATE_FILE is not None:
        STATE_FILE.write_text(json.dumps(STATE), encoding="utf-8")


def _matches(resource_type: str, query: str) -> list[dict[str, Any]]:
    name, _, value = query.partition("=")
    found = []
    for stored in STATE["resources"]:
        resource = stored["resource"]
        if resource["resourceType"] != resource_type:
            continue
        if name == "identifier":
            system, _, code = value.rpartition("|")
            identifiers = resource.get("identifier") or []
            if isinstance(identifiers, dict):
                identifiers = [identifiers]
            if any(i.get("system", "") == system and i.get("value") == code
                   for i in identifiers):
                found.append(resource)
        elif stored["query"] == query:
            found.append(resource)
    return found


def _transaction(bundle: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" \
            or bundle.get("type") != "transaction":
        return 400, _outcome("a transaction Bundle is required")
    staged: list[dict[str, Any]] = []
    answers = []
    ids: dict[str, str] = {}
    for entry in bundle.get("entry") or []:
        resource, request = entry.get("resource"), entry.get("request") or {}
        if request.get("method") != "POST" or not isinstance(resource, dict):
            return 400, _outcome("only POST entries are supported")
        kind = resource["resourceType"]
        query = request.get("ifNoneExist")
        if query:
            found = _matches(kind, query) + [s["resource"] for s in staged
                                             if s["query"] == query
                                             and s["resource"]["resourceType"] == kind]
            if len(found) > 1:
                return 412, _outcome(f"{kind}?{query} matches {len(found)} resources")
            if found:
                ids[entry.get("fullUrl", "")] = f"{kind}/{found[0]['id']}"
                answers.append({"response": {"status": "200 OK",
                                             "location": f"{kind}/{found[0]['id']}/_history/1"}})
                continue
        created = {**resource, "id": str(uuid.uuid4())}
        staged.append({"resource": created, "query": query})
        ids[entry.get("fullUrl", "")] = f"{kind}/{created['id']}"
        answers.append({"response": {"status": "201 Created",
                                     "location": f"{kind}/{created['id']}/_history/1"}})
    STATE["resources"].extend(staged)  # all or nothing: only now
    return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


def _outcome(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # quiet
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/_state":
            with LOCK:
                self._send(200, {"resources": [s["resource"] for s in STATE["resources"]],
                                 "posts": STATE["posts"], "bodies": STATE["bodies"]})
        else:
            self._send(404, _outcome("not found"))

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if self.path == "/_faults":
            with LOCK:
                STATE["faults"] = list(body)
            return self._send(200, {})
        if self.path == "/_reset":
            with LOCK:
                STATE.update(resources=[], posts=0, faults=[], bodies=[])
                _save()
            return self._send(200, {})
        if self.path != "/":
            return self._send(404, _outcome("not found"))
        with LOCK:
            STATE["posts"] += 1
            STATE["bodies"].append(body)
            fault = STATE["faults"].pop(0) if STATE["faults"] else {}
        if fault.get("drop"):
            self.close_connection = True
            self.connection.close()
            return None
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault.get("status"):
            status = int(fault["status"])
            return self._send(status, _outcome(fault.get("text", f"injected {status}")))
        with LOCK:
            status, answer = _transaction(body)
            _save()
        return self._send(status, answer)


def main(argv: list[str]) -> int:
    global STATE_FILE
    STATE_FILE = Path(argv[0]) if argv else None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
