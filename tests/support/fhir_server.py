"""A small FHIR server for the delivery and SMART tests, run as its own process on loopback.

``python -m tests.support.fhir_server STATE.json [--auth AUTH_BASE]`` listens on
127.0.0.1 at a free port and prints ``port <n>`` on its first stdout line. It
implements just what launch and write-back need, independently of the product's code:

- ``POST /`` with a transaction Bundle: all-or-nothing; each entry ``POST``s its
  resource, with R4 conditional-create semantics for ``request.ifNoneExist``: 0 matches
  create (201), 1 match is a no-op (200), more are 412. ``identifier=system|value``
  matches resources of that type by identifier; any other query matches the resources
  created under that same query. Answers a ``transaction-response`` Bundle.
- ``POST /<Type>``: one create, ``If-None-Exist`` with the same semantics.
- ``GET /<Type>/<id>`` and ``GET /<Type>?identifier=&patient=&subject=&code=&_id=`` (AND
  of the parameters; others are refused with 400) over seeded and created resources.
- ``GET /metadata``: a CapabilityStatement. The default one declares, per type, the
  search parameters served below (``_tag`` for every type, on the server) and is
  advertised but not enforced; one set with ``POST /_capability`` is: no
  ``transaction`` interaction makes ``POST /`` a 405, a type without ``create`` cannot
  be created (simulating EHRs that lack them).
- ``POST /_strict`` with a JSON object: production servers' refusals, each switchable
  (``POST /_reset`` turns them off), answered as those servers do:
  ``{"max_entries": 8}``: a transaction holding a conditional create and more entries
  than that is a 400 ``invalid`` "Transaction requires strict isolation but has too
  many entries" (Medplum's words: no number, and a content code);
  ``{"declared_only": true}``: a search or ``ifNoneExist`` naming a parameter the
  current CapabilityStatement does not declare for the type, or any modifier or chain
  (``entity:QuestionnaireResponse.identifier``), is a 400 ``not-supported``;
  ``{"no_transaction_types": ["Provenance"]}``: a transaction holding those types is a
  400 ``not-supported``;
  ``{"literal_references": true}``: a resource naming its patient (``subject``,
  ``patient``) other than by a literal ``Patient/<id>`` of this server, or holding any
  literal reference that does not resolve here, is a 400 ``required`` / ``invalid``.
- ``POST /_faults`` with a JSON list: the answers to give the next transactions and
  creates instead, one each, in order: ``{"status": 500}``, ``{"status": 400, "text":
  "..."}`` (with an OperationOutcome), ``{"delay": 3}`` (wait, then process normally:
  the client may have given up, but the EHR still commits), ``{"drop": true}`` (close
  the connection).
- ``POST /_seed`` ``{"resources": [...]}`` stores resources as given (ids kept).
- ``GET /_state``: ``{"resources": [...], "posts": n, "bodies": [...], "auth": [...]}``;
  ``POST /_reset`` (also restores the default CapabilityStatement).

With ``--auth`` (the test authorization server's base URL) it is a SMART resource
server: ``GET /.well-known/smart-configuration`` points at that server, and every call
but ``/_*``, ``/metadata`` and discovery needs ``Authorization: Bearer`` with an RS384
access token from it (keys from its ``/jwks``, cached, refetched on an unknown kid;
``aud`` this server's base, not expired), else 401 with ``WWW-Authenticate: Bearer``.
Scopes (SMART v2 ``cruds`` and v1 ``read``/``write``; tests/support/smart_access.py)
are checked per type: a read needs ``r``, a search ``s``, a create and each transaction
entry ``c`` (403 naming what is missing); with only ``patient/`` scopes a token reaches only its own patient. Each
such call is logged in ``auth`` as method, path (no query), token ``sub`` and outcome,
never a token. Without ``--auth`` nothing is checked, as the delivery tests expect.

The state is also written to STATE.json after every change (for post-mortems).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support import loopback, smart_access
from tests.support.bundles import references
from tests.support.smart_access import Access, Forbidden, Unauthorized

LOCK = threading.Lock()
STATE: dict[str, Any] = {"resources": [], "posts": 0, "faults": [], "bodies": [], "auth": []}
STATE_FILE: Path | None = None
AUTH: str | None = None  # the authorization server's base URL (``--auth``)
BASE = ""  # this server's base URL, set in main() once the port is known

RESOURCE_TYPES = ("Patient", "Encounter", "QuestionnaireResponse", "Observation",
                  "Condition", "ClinicalImpression", "ServiceRequest", "DocumentReference",
                  "Provenance", "Device")
ROUTE = re.compile(r"/([A-Z][A-Za-z]{1,63})(?:/([A-Za-z0-9\-.]{1,64}))?")
SEARCH_PARAMETERS = ("identifier", "patient", "subject", "code", "_id", "_tag", "target",
                     "entity", "birthdate")
IGNORED_PARAMETERS = ("_count", "_format")
#: The search parameters the default CapabilityStatement declares per type (``_tag``:
#: on the server, for every type).
DECLARED: dict[str, tuple[str, ...]] = {
    "Patient": ("_id", "identifier", "birthdate"),
    "Encounter": ("_id", "identifier", "patient", "subject"),
    "Provenance": ("_id", "target", "entity", "patient"),
    "Device": ("_id", "identifier"),
}
CLINICAL_PARAMETERS = ("_id", "identifier", "patient", "subject", "code")
STRICT: dict[str, Any] = {}
_TOKEN_TYPES = {"identifier": "token", "code": "token", "_id": "token", "_tag": "token",
                "birthdate": "date"}


def _declared_params(kind: str) -> tuple[str, ...]:
    return DECLARED.get(kind, CLINICAL_PARAMETERS)


def _default_capability() -> dict[str, Any]:
    resources = [{"type": kind, "interaction": [{"code": c} for c in
                                                ("read", "search-type", "create")],
                  "conditionalCreate": True,
                  "searchParam": [{"name": n, "type": _TOKEN_TYPES.get(n, "reference")}
                                  for n in _declared_params(kind)]}
                 for kind in RESOURCE_TYPES]
    rest: dict[str, Any] = {"mode": "server", "interaction": [{"code": "transaction"}],
                            "resource": resources,
                            "searchParam": [{"name": "_tag", "type": "token"}]}
    if AUTH:
        rest["security"] = {
            "service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"}]}],
            "extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "authorize", "valueUri": f"{AUTH}/authorize"},
                              {"url": "token", "valueUri": f"{AUTH}/token"}]}]}
    return {"resourceType": "CapabilityStatement", "status": "active",
            "date": "2026-01-01", "kind": "instance", "fhirVersion": "4.0.1",
            "format": ["json"], "implementation": {"description": "test EHR",
                                                   "url": BASE},
            "rest": [rest]}


CAPABILITY: dict[str, Any] = {"statement": None, "enforced": False}


def _capability() -> dict[str, Any]:
    if CAPABILITY["statement"] is None:
        CAPABILITY["statement"] = _default_capability()
    return CAPABILITY["statement"]


def _smart_configuration() -> dict[str, Any]:
    return {
        "issuer": AUTH, "jwks_uri": f"{AUTH}/jwks",
        "authorization_endpoint": f"{AUTH}/authorize", "token_endpoint": f"{AUTH}/token",
        "grant_types_supported": ["authorization_code", "refresh_token",
                                  "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient",
                             "launch/encounter", "offline_access", "online_access",
                             "patient/*.cruds", "user/*.cruds", "system/*.cruds",
                             "patient/*.rs", "user/*.rs", "system/*.rs"],
        "response_types_supported": ["code"],
        "capabilities": ["launch-ehr", "launch-standalone", "client-public",
                         "client-confidential-asymmetric", "context-ehr-patient",
                         "context-ehr-encounter", "context-standalone-patient",
                         "permission-v2", "permission-patient", "permission-user",
                         "sso-openid-connect"]}


def _save() -> None:
    if STATE_FILE is not None:
        STATE_FILE.write_text(json.dumps(STATE), encoding="utf-8")


def _identifiers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    identifiers = resource.get("identifier") or []
    if isinstance(identifiers, dict):  # QuestionnaireResponse.identifier is one object
        identifiers = [identifiers]
    return [i for i in identifiers if isinstance(i, dict)]


def _matches(resource_type: str, query: str) -> list[dict[str, Any]]:
    params = parse_qsl(query, keep_blank_values=True)
    if STRICT.get("declared_only") or all(n in SEARCH_PARAMETERS for n, _ in params):
        return [s["resource"] for s in STATE["resources"]
                if s["resource"]["resourceType"] == resource_type
                and all(_search_matches(s["resource"], n, v) for n, v in params)]
    # lenient, as before: a query it does not understand matches what it created
    return [s["resource"] for s in STATE["resources"]
            if s["resource"]["resourceType"] == resource_type and s["query"] == query]


def _undeclared(kind: str, query: str) -> str | None:
    """Under ``declared_only``: why a query names what the CapabilityStatement does not
    declare for ``kind`` (None: all declared)."""
    if not STRICT.get("declared_only"):
        return None
    rest = (_capability().get("rest") or [{}])[0]
    declared = {p.get("name") for p in rest.get("searchParam") or []}
    for resource in rest.get("resource") or []:
        if resource.get("type") == kind:
            declared |= {p.get("name") for p in resource.get("searchParam") or []}
    names = [n for n, _ in parse_qsl(query, keep_blank_values=True)
             if n not in IGNORED_PARAMETERS]
    bad = sorted({n for n in names if n not in declared or ":" in n or "." in n})
    if bad:
        return f"unsupported search parameter(s) on {kind}: {', '.join(bad)}"
    return None


def _unresolved(resource: dict[str, Any], known: set[str]) -> tuple[str, str] | None:
    """Under ``literal_references``: (issue code, why) when the resource names its
    patient other than literally, or holds a literal reference not found here."""
    if not STRICT.get("literal_references"):
        return None
    for field in ("subject", "patient"):
        value = resource.get(field)
        if isinstance(value, dict) and not str(value.get("reference", "")).startswith(
                "Patient/"):
            return "required", (f"{resource['resourceType']}.{field} must be a literal "
                                "reference to a Patient on this server")
    stored = {f"{s['resource']['resourceType']}/{s['resource'].get('id')}"
              for s in STATE["resources"]} | known
    for reference in references(resource):
        if re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}", reference) \
                and reference not in stored:
            return "invalid", f"reference {reference} does not resolve on this server"
        if reference.startswith("urn:"):
            return "invalid", f"reference {reference} does not resolve on this server"
    return None


def _not_creatable(kind: str) -> str | None:
    """Why a custom CapabilityStatement forbids creating ``kind`` (None: allowed)."""
    if not CAPABILITY["enforced"]:
        return None
    for rest in _capability().get("rest") or []:
        for resource in rest.get("resource") or []:
            if resource.get("type") == kind and any(
                    i.get("code") == "create" for i in resource.get("interaction") or []):
                return None
    return f"this server does not support create for {kind}"


def _transaction(bundle: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" \
            or bundle.get("type") != "transaction":
        return 400, _outcome("a transaction Bundle is required")
    entries = bundle.get("entry") or []
    limit = STRICT.get("max_entries")
    if limit and len(entries) > int(limit) and any(
            (e.get("request") or {}).get("ifNoneExist") for e in entries
            if isinstance(e, dict)):
        return 400, _outcome("Transaction requires strict isolation but has too many "
                             "entries", "invalid")
    refused_types = sorted({e["resource"]["resourceType"] for e in entries
                            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                            and e["resource"].get("resourceType")
                            in STRICT.get("no_transaction_types", ())})
    if refused_types:
        return 400, _outcome(f"{', '.join(refused_types)} not supported in a transaction",
                             "not-supported")
    staged: list[dict[str, Any]] = []
    answers = []
    ids: dict[str, str] = {}
    for entry in entries:
        resource, request = entry.get("resource"), entry.get("request") or {}
        if request.get("method") != "POST" or not isinstance(resource, dict) \
                or not isinstance(resource.get("resourceType"), str):
            return 400, _outcome("only POST entries of resources are supported")
        kind = resource["resourceType"]
        refused = _not_creatable(kind)
        if refused:
            return 400, _outcome(refused, "not-supported")
        query = request.get("ifNoneExist")
        undeclared = _undeclared(kind, query) if query else None
        if undeclared:
            return 400, _outcome(undeclared, "not-supported")
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
    for item in staged:  # R4 transaction rules: fullUrl references become the real ids
        item["resource"] = _resolved(item["resource"], ids)
        unresolved = _unresolved(item["resource"], set(ids.values()))
        if unresolved:
            return 400, _outcome(unresolved[1], unresolved[0])
    STATE["resources"].extend(staged)  # all or nothing: only now
    return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


def _resolved(node: Any, ids: dict[str, str]) -> Any:
    """``node`` with every ``reference`` naming an entry's fullUrl replaced by the id
    the transaction gave that entry (created or matched)."""
    if isinstance(node, list):
        return [_resolved(v, ids) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _resolved(v, ids) for k, v in node.items()}
    if isinstance(out.get("reference"), str) and out["reference"] in ids:
        out["reference"] = ids[out["reference"]]
    return out


def _create(kind: str, resource: Any, if_none_exist: str | None) -> tuple[int, Any]:
    """One ``POST /<Type>``: (status, the resource or an OperationOutcome)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != kind:
        return 400, _outcome(f"the body must be a {kind} resource", "invalid")
    refused = _not_creatable(kind)
    if refused:
        return 405, _outcome(refused, "not-supported")
    undeclared = _undeclared(kind, if_none_exist) if if_none_exist else None
    if undeclared:
        return 400, _outcome(undeclared, "not-supported")
    if if_none_exist:
        found = _matches(kind, if_none_exist)
        if len(found) > 1:
            return 412, _outcome(f"{kind}?{if_none_exist} matches {len(found)} resources")
        if found:
            return 200, found[0]
    unresolved = _unresolved(resource, set())
    if unresolved:
        return 400, _outcome(unresolved[1], unresolved[0])
    created = {**resource, "id": str(uuid.uuid4())}
    STATE["resources"].append({"resource": created, "query": if_none_exist})
    return 201, created


def _outcome(text: str, code: str = "processing") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


# -- reading and searching --------------------------------------------------------------

def _find(kind: str, resource_id: str) -> dict[str, Any] | None:
    for stored in STATE["resources"]:
        resource = stored["resource"]
        if resource.get("resourceType") == kind and resource.get("id") == resource_id:
            return resource
    return None


def _references_patient(resource: dict[str, Any], patient: str) -> bool:
    """Patient/<patient> itself, or a resource whose subject or patient is it."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient
    for field in ("subject", "patient"):
        reference = (resource.get(field) or {}).get("reference") \
            if isinstance(resource.get(field), dict) else None
        if isinstance(reference, str) and (reference == f"Patient/{patient}"
                                           or reference.endswith(f"/Patient/{patient}")):
            return True
    return False


def _patient_id(value: str) -> str:
    return value.rpartition("Patient/")[2] if "Patient/" in value else value


def _search_matches(resource: dict[str, Any], name: str, value: str) -> bool:
    if name == "_id":
        return resource.get("id") == value
    if name == "identifier":
        if "|" not in value:
            return any(i.get("value") == value for i in _identifiers(resource))
        system, _, code = value.partition("|")
        return any(i.get("system", "") == system and (not code or i.get("value") == code)
                   for i in _identifiers(resource))
    if name in ("patient", "subject"):
        return resource.get("resourceType") != "Patient" \
            and _references_patient(resource, _patient_id(value))
    if name == "_tag":
        system, _, code = value.rpartition("|")
        tags = (resource.get("meta") or {}).get("tag") or []
        return any(isinstance(t, dict) and t.get("code") == code
                   and (not system or t.get("system") == system) for t in tags)
    if name in ("target", "entity"):
        where = resource.get("target") or [] if name == "target" else [
            e.get("what") for e in resource.get("entity") or [] if isinstance(e, dict)]
        return any(isinstance(r, dict) and r.get("reference") == value for r in where)
    if name == "birthdate":
        return resource.get("birthDate") == value
    if name == "code":
        system, _, code = value.rpartition("|")
        codings = (resource.get("code") or {}).get("coding") or [] \
            if isinstance(resource.get("code"), dict) else []
        return any(isinstance(c, dict) and c.get("code") == code
                   and (not system or c.get("system") == system) for c in codings)
    return False


def _searchset(kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                              "total": len(resources)}
    if resources:
        bundle["entry"] = [{"fullUrl": f"{BASE}/{kind}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in resources]
    return bundle


# -- HTTP -------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # quiet
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _access(self) -> Access | None:
        """The caller's verified access (None without ``--auth``); on failure the 401 is
        sent and logged, and Unauthorized raised for the caller to stop."""
        if not AUTH:
            return None
        path = urlsplit(self.path).path
        try:
            access = smart_access.verify(self.headers.get("Authorization"), AUTH, BASE)
        except Unauthorized as exc:
            self._log(path, None, False)
            has_token = bool(self.headers.get("Authorization"))
            challenge = 'Bearer realm="fhir"' + (
                f', error="invalid_token", error_description="{exc}"' if has_token else "")
            self._send(401, _outcome(str(exc), "login"), {"WWW-Authenticate": challenge})
            raise
        return access

    def _log(self, path: str, sub: str | None, ok: bool) -> None:
        with LOCK:
            STATE["auth"].append({"method": self.command, "path": path, "sub": sub,
                                  "ok": ok})

    def _forbidden(self, access: Access, exc: Forbidden) -> None:
        self._log(urlsplit(self.path).path, access.sub, False)
        self._send(403, _outcome(str(exc), "forbidden"))

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/_state":
            with LOCK:
                return self._send(200, {"resources": [s["resource"]
                                                      for s in STATE["resources"]],
                                        "posts": STATE["posts"], "bodies": STATE["bodies"],
                                        "auth": STATE["auth"]})
        if url.path == "/metadata":
            with LOCK:
                return self._send(200, _capability())
        if url.path == "/.well-known/smart-configuration" and AUTH:
            return self._send(200, _smart_configuration())
        route = ROUTE.fullmatch(url.path)
        if route is None:
            return self._send(404, _outcome("not found", "not-found"))
        try:
            access = self._access()
        except Unauthorized:
            return None
        kind, resource_id = route.groups()
        try:
            if resource_id:
                self._read(access, kind, resource_id)
            else:
                self._search(access, kind, url.query)
        except Forbidden as exc:
            assert access is not None
            self._forbidden(access, exc)

    def _read(self, access: Access | None, kind: str, resource_id: str) -> None:
        patient = access.require(kind, "r") if access else None
        with LOCK:
            resource = copy.deepcopy(_find(kind, resource_id))
        if resource is None:
            self._log_ok(access)
            return self._send(404, _outcome(f"{kind}/{resource_id} is not known",
                                            "not-found"))
        if patient is not None and not _references_patient(resource, patient):
            raise Forbidden(f"a patient/ scope reaches only the token's patient, "
                            f"not {kind}/{resource_id}")
        self._log_ok(access)
        self._send(200, resource, {"ETag": 'W/"1"'})

    def _search(self, access: Access | None, kind: str, query: str) -> None:
        patient = access.require(kind, "s") if access else None
        try:
            params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            return self._send(400, _outcome("the query string is malformed", "invalid"))
        undeclared = _undeclared(kind, query)
        if undeclared:
            return self._send(400, _outcome(undeclared, "not-supported"))
        params = [(n, v) for n, v in params if n not in IGNORED_PARAMETERS]
        unknown = sorted({n for n, _ in params if n not in SEARCH_PARAMETERS})
        if unknown:
            return self._send(400, _outcome(f"unsupported search parameter(s) on {kind}: "
                                            + ", ".join(unknown), "not-supported"))
        if patient is not None:
            for name, value in params:
                if name in ("patient", "subject") and _patient_id(value) != patient:
                    raise Forbidden("a patient/ scope reaches only the token's patient")
        with LOCK:
            found = [copy.deepcopy(s["resource"]) for s in STATE["resources"]
                     if s["resource"].get("resourceType") == kind
                     and all(_search_matches(s["resource"], n, v) for n, v in params)]
        if patient is not None:
            found = [r for r in found if _references_patient(r, patient)]
        self._log_ok(access)
        self._send(200, _searchset(kind, found))

    def _log_ok(self, access: Access | None) -> None:
        if access is not None:
            self._log(urlsplit(self.path).path, access.sub, True)

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        try:
            body = self._body()
        except ValueError:
            return self._send(400, _outcome("the body is not JSON", "invalid"))
        if path.startswith("/_"):
            return self._control(path, body)
        route = ROUTE.fullmatch(path)
        if path != "/" and (route is None or route.group(2)):
            return self._send(404, _outcome("not found", "not-found"))
        try:
            access = self._access()
        except Unauthorized:
            return None
        kinds = [route.group(1)] if route else [
            e["resource"]["resourceType"] for e in (
                body.get("entry") or [] if isinstance(body, dict) else [])
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            and isinstance(e["resource"].get("resourceType"), str)]
        if access is not None:
            try:
                for kind in sorted(set(kinds)):
                    access.require(kind, "c")
            except Forbidden as exc:
                return self._forbidden(access, exc)
            self._log_ok(access)
        if path == "/" and CAPABILITY["enforced"] and not any(
                i.get("code") == "transaction"
                for rest in _capability().get("rest") or []
                for i in rest.get("interaction") or []):
            return self._send(405, _outcome("this server does not support transactions",
                                            "not-supported"))
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
            return self._send(status, _outcome(fault.get("text", f"injected {status}"),
                                               fault.get("code", "processing")))
        if route is None:
            with LOCK:
                status, answer = _transaction(body)
                _save()
            return self._send(status, answer)
        kind = route.group(1)
        with LOCK:
            status, answer = _create(kind, body, self.headers.get("If-None-Exist"))
            _save()
        headers = {}
        if status == 201:
            headers = {"Location": f"{BASE}/{kind}/{answer['id']}/_history/1",
                       "ETag": 'W/"1"'}
        return self._send(status, answer, headers)

    def _control(self, path: str, body: Any) -> None:
        with LOCK:
            if path == "/_faults" and isinstance(body, list):
                STATE["faults"] = list(body)
            elif path == "/_reset":
                STATE.update(resources=[], posts=0, faults=[], bodies=[], auth=[])
                CAPABILITY.update(statement=None, enforced=False)
                STRICT.clear()
                _save()
            elif path == "/_strict" and isinstance(body, dict):
                STRICT.clear()
                STRICT.update(body)
            elif path == "/_capability" and isinstance(body, dict) \
                    and body.get("resourceType") == "CapabilityStatement":
                CAPABILITY.update(statement=body, enforced=True)
            elif path == "/_seed" and isinstance(body, dict) \
                    and isinstance(body.get("resources"), list):
                for resource in body["resources"]:
                    if not isinstance(resource, dict) \
                            or not isinstance(resource.get("resourceType"), str):
                        return self._send(400, _outcome("a seed must be a resource",
                                                        "invalid"))
                    seeded = {**resource, "id": resource.get("id") or str(uuid.uuid4())}
                    STATE["resources"] = [
                        s for s in STATE["resources"]
                        if (s["resource"].get("resourceType"), s["resource"].get("id"))
                        != (seeded["resourceType"], seeded["id"])]
                    STATE["resources"].append({"resource": seeded, "query": None})
                _save()
            elif path in ("/_faults", "/_capability", "/_seed", "/_strict"):
                return self._send(400, _outcome(f"{path}: unexpected body", "invalid"))
            else:
                return self._send(404, _outcome("not found", "not-found"))
        return self._send(200, {})


def main(argv: list[str]) -> int:
    global STATE_FILE, AUTH, BASE
    parser = argparse.ArgumentParser(prog="python -m tests.support.fhir_server")
    parser.add_argument("state", nargs="?", type=Path)
    parser.add_argument("--auth", help="the SMART authorization server's base URL")
    args = parser.parse_args(argv)
    STATE_FILE, AUTH = args.state, (args.auth or "").rstrip("/") or None
    server = loopback.bind(Handler)
    BASE = loopback.base(server)
    return loopback.serve(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
