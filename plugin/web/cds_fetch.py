"""What the CDS services read over HTTP: a client's JWK Set from its configured ``jku``,
and FHIR data the client did not prefetch, from its ``fhirServer``.

Both are calls made while an EHR waits for cards, to servers named by configuration
(never by the caller alone), so each is bounded: a timeout (``CDS_HOOKS_FETCH_TIMEOUT_
SECONDS``), a size cap read from the stream (a server that sends more is cut off, not
buffered), no redirects (a redirect could lead the bearer token somewhere else), and a
JSON body: ``adapters.http_json.get_json``, the one bounded GET of the package (the
SMART client reads with it too). ``FetchError`` says what failed in words safe to log
and to return: the step, an HTTP status or "no answer in time"; never a token, a URL's
query (it names the patient) or the body.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ..adapters.http_json import FetchError, get_json, is_loopback, secure_url

__all__ = ["FHIR_JSON", "MAX_FHIR_BYTES", "MAX_JWKS_BYTES", "FetchError", "fetch_prefetch",
           "fill", "get_json", "is_loopback", "secure_url", "server_allowed"]

#: Largest JWK Set read from a ``jku`` (bytes): a handful of public keys is ~2 KB.
MAX_JWKS_BYTES = 64 * 1024
#: Largest FHIR answer read from a ``fhirServer`` (bytes): a page of 200 exam
#: Observations is ~400 KB.
MAX_FHIR_BYTES = 2 * 1024 * 1024
FHIR_JSON = "application/fhir+json"


# --- prefetch templates against the client's fhirServer ------------------------------

_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z][A-Za-z0-9]*)\s*\}\}")


def fill(template: str, context: Mapping[str, Any]) -> str:
    """A prefetch template with its ``{{context.x}}`` tokens replaced by the context's
    values, URL-encoded; FetchError when a token has no plain value."""
    def value(match: re.Match[str]) -> str:
        found = context.get(match.group(1))
        if not isinstance(found, str) or not found:
            raise FetchError(f"the template needs context.{match.group(1)}")
        return quote(found, safe="")
    filled = _TOKEN.sub(value, template)
    if "{{" in filled:
        raise FetchError("the template has a token this service cannot fill")
    return filled


def server_allowed(fhir_server: str, allowed: tuple[str, ...] | None) -> bool:
    """Whether data may be read from ``fhir_server``: one of the client's configured
    ``fhir_servers`` (the URL itself or a path under it), or any https URL when none
    are configured."""
    if allowed is None:
        parts = urlsplit(fhir_server)
        return parts.scheme == "https" and bool(parts.hostname)
    server = fhir_server.rstrip("/")
    return any(server == base or server.startswith(base + "/") for base in allowed)


def fetch_prefetch(fhir_server: str, template: str, context: Mapping[str, Any], *,
                   access_token: str, timeout: float) -> Any:
    """What ``template`` names on ``fhir_server`` (read or search), as JSON."""
    url = f"{fhir_server.rstrip('/')}/{fill(template, context)}"
    return get_json(url, timeout=timeout, max_bytes=MAX_FHIR_BYTES, accept=FHIR_JSON,
                    headers={"Authorization": f"Bearer {access_token}"})
