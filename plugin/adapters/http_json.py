"""One bounded GET of a JSON document, for every read the package makes of another
server while someone waits: a CDS client's keys, FHIR data a CDS client did not
prefetch, an EHR's SMART configuration, a Patient at launch.

Bounded because the servers are not ours: a timeout, a size cap read from the stream
(a server that sends more is cut off, not buffered), no redirects (a redirect could
lead a bearer token somewhere else), and a JSON body. ``FetchError`` says what failed
in words safe to log and to show: an HTTP status, "no answer in time", "cannot
connect"; never a token, a URL's query (it may name a patient) or the body.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

__all__ = ["FetchError", "Fetched", "fetch_json", "get_json", "is_loopback", "max_age",
           "network_reason", "secure_url"]


class FetchError(Exception):
    """A fetch failed; ``reason`` names the failure, never secrets or patient data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    """A JSON document and how long its server lets it be kept (``Cache-Control``):
    seconds, 0 for ``no-store``/``no-cache``, None when the server does not say."""

    data: Any
    max_age: float | None


def get_json(url: str, *, timeout: float, max_bytes: int,
             headers: Mapping[str, str] | None = None, accept: str = "application/json") -> Any:
    """GET ``url`` and parse its JSON body; raises FetchError on any failure."""
    return fetch_json(url, timeout=timeout, max_bytes=max_bytes, headers=headers,
                      accept=accept).data


def fetch_json(url: str, *, timeout: float, max_bytes: int,
               headers: Mapping[str, str] | None = None,
               accept: str = "application/json") -> Fetched:
    """``get_json`` with the answer's ``Cache-Control`` (for caches that must respect it)."""
    try:
        with requests.get(url, headers={"Accept": accept, **(headers or {})},
                          timeout=timeout, stream=True, allow_redirects=False) as response:
            if not 200 <= response.status_code < 300:
                raise FetchError(f"HTTP {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"the answer is larger than {max_bytes} bytes")
            body = response.raw.read(max_bytes + 1, decode_content=True)
            kept = max_age(response.headers.get("Cache-Control"))
    except requests.RequestException as error:
        raise FetchError(network_reason(error)) from None
    if len(body) > max_bytes:
        raise FetchError(f"the answer is larger than {max_bytes} bytes")
    try:
        return Fetched(json.loads(body), kept)
    except (ValueError, UnicodeDecodeError):
        raise FetchError("the answer is not JSON") from None


def max_age(cache_control: str | None) -> float | None:
    """Seconds a ``Cache-Control`` value lets an answer be kept: 0 for ``no-store`` or
    ``no-cache``, ``max-age`` otherwise, None when it says neither."""
    directives = [d.strip().lower() for d in (cache_control or "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            value = value.strip().strip('"')
            return float(value) if value.isdigit() else 0.0
    return None


def network_reason(error: requests.RequestException) -> str:
    """A failed request in words (the exception's own text may quote the URL)."""
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        return "cannot connect"
    return type(error).__name__


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_url(url: str) -> bool:
    """An https URL, or http to this machine only (nothing crosses a network in clear)."""
    parts = urlsplit(url)
    return bool(parts.hostname) and (parts.scheme == "https"
                                     or (parts.scheme == "http" and is_loopback(url)))
