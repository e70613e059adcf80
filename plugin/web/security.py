"""Browser-facing security for the tablet pages: secret key, CSRF, response headers.

``init_app(app)`` wires three things, once per app (it is idempotent, so ``create_app``
and a test may both call it):

1. **SECRET_KEY.** It signs the session cookie, and so every CSRF token. When the
   configuration leaves it empty, a random key is kept in ``<instance>/secret_key``
   (mode 0600): a restart or a second gunicorn worker must sign with the same key, or
   every open form on every tablet would fail its CSRF check.
2. **CSRF** (flask-wtf's ``CSRFProtect``) on every POST/PUT/PATCH/DELETE of the app,
   except the machine APIs (``MACHINE_PREFIXES``: the FHIR API under ``/fhir`` and the
   CDS Hooks services under ``/cds-services``, the token endpoint ``/auth/token``):
   they are called without cookies,
   so a forged cross-site request carries no ambient authority there and a token would
   only break its clients. A failed check is a clear 400 - a page for a browser, JSON
   for a script - never a 500. Templates get ``csrf_token()``.
3. **Headers** on every response: a strict Content-Security-Policy (no inline script or
   style, so injected markup cannot run), no sniffing, no framing (except by the EHR
   origins in ``FRAME_ANCESTORS``, for EHRs that embed SMART apps), no referrer leaving
   the site, no camera/microphone/location, and ``no-store`` on pages, which show
   patient data that must not linger in a shared tablet's cache.
"""
from __future__ import annotations

import inspect
import logging
import secrets
import stat
from collections.abc import Iterable
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from ..adapters import private_files
from .errors import FHIR_PREFIX

log = logging.getLogger(__name__)
EXTENSION_KEY = "security"
#: Machine APIs, authorised per call (bearer tokens), never by the session cookie: no
#: CSRF token there. CDS Hooks clients authenticate with a signed JWT (cds_auth), API
#: clients at the token endpoint with a signed client assertion (oauth_token).
MACHINE_PREFIXES = (FHIR_PREFIX, "/cds-services", "/auth/token")
SECRET_KEY_FILE = "secret_key"

#: Only our own origin may supply anything; ``data:`` images for inline icons. No
#: 'unsafe-inline' or 'unsafe-eval' anywhere: pages carry their script and style in
#: static files, so an injected <script> or style="" attribute is inert.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

#: Set on every response unless the view set the header itself on purpose.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # ``same-origin``, not ``no-referrer``: URLs (which may name a patient) never go to
    # another site either way, but under ``no-referrer`` browsers omit the Referer on our
    # own form posts too, and over HTTPS flask-wtf's CSRF check (WTF_CSRF_SSL_STRICT)
    # refuses any POST without a same-origin Referer - every form would fail in
    # production. tests/web/test_security.py shows both halves.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

EXPIRED_MESSAGE = ("This page has expired, so nothing was saved. "
                   "Reload the page and try again.")

_EXPIRED_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page expired</title></head>
<body><main>
<h1>This page has expired</h1>
<p>{message}</p>
<p>Go back, reload the page and enter your change again. This happens when a page
was left open for a long time or the service was restarted.</p>
</main></body>
</html>
"""


def init_app(app: Flask) -> CSRFProtect:
    """Install secret key, CSRF protection and security headers on ``app`` (once)."""
    existing = app.extensions.get(EXTENSION_KEY)
    if existing is not None:
        return existing
    if "apply_exemptions" not in inspect.signature(CSRFProtect.protect).parameters:
        # Fail at start-up, not with a TypeError (a 500) at the first form post.
        raise RuntimeError("plugin.web.security needs flask-wtf >= 1.3 "
                           "(CSRFProtect.protect(apply_exemptions=...))")

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create_secret_key(
            Path(app.instance_path) / SECRET_KEY_FILE)

    # The exemption follows the URL, as web.errors does: everything under /fhir (and
    # /cds-services) is a machine API, whichever blueprint (or app-level rule) serves
    # it. Exempting only the fhir_api blueprint would leave any other /fhir route
    # demanding a token its clients cannot have. So flask-wtf's own app-wide hook is
    # switched off and ours runs its check - honouring @csrf.exempt on views - for
    # every other path.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf = CSRFProtect(app)  # also puts csrf_token() into every template's globals

    @app.before_request
    def _csrf_outside_machine_apis() -> None:
        if app.config["WTF_CSRF_ENABLED"] and not _under_machine_api():
            csrf.protect(apply_exemptions=True)  # skips 404/405s and exempt views

    app.register_error_handler(CSRFError, _csrf_failed)
    headers = security_headers(app.config.get("FRAME_ANCESTORS") or ())
    if app.config.get("FRAME_ANCESTORS") and app.config.get("SESSION_COOKIE_SAMESITE") == "Lax":
        # inside the EHR's frame our pages are a third-party context: a Lax cookie would
        # not come back, and every form would fail its CSRF check (the tokens remain)
        app.config["SESSION_COOKIE_SAMESITE"] = "None"

    @app.after_request
    def _add_security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            # Pages show patient data: keep them out of every cache, also back/forward.
            response.headers["Cache-Control"] = "no-store"
        return response

    app.extensions[EXTENSION_KEY] = csrf
    return csrf


def security_headers(frame_ancestors: Iterable[str] = ()) -> dict[str, str]:
    """The headers every response gets. With ``frame_ancestors`` (the EHR origins that
    embed the app, setting FRAME_ANCESTORS) those origins may frame the pages; else no
    one may. A ValueError names an entry that is not an origin."""
    origins = [_origin(o) for o in frame_ancestors]
    if not origins:
        return dict(SECURITY_HEADERS)
    policy = CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'",
                                             "frame-ancestors " + " ".join(origins))
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy}
    del headers["X-Frame-Options"]  # it cannot name several origins; CSP does
    return headers


def _origin(value: str) -> str:
    parts = urlsplit(str(value))
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "*" in parts.netloc:
        raise ValueError(f"FRAME_ANCESTORS entries must be origins like "
                         f"https://ehr.example.org, not {value!r}")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1"):
        raise ValueError(f"FRAME_ANCESTORS: {value!r} must use https")
    return f"{parts.scheme}://{parts.netloc}"


def load_or_create_secret_key(path: Path) -> str:
    """The key in ``path``, creating it (random, mode 0600) if there is none yet; two
    processes starting together end up with the same key (``private_files``)."""
    key, created = private_files.read_or_create(path, lambda: secrets.token_hex(32) + "\n",
                                                _read_secret_key)
    if created:
        log.info("created a new secret key in %s", path)
    return key


def _read_secret_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        # A truncated or emptied file would silently weaken every session: refuse.
        raise RuntimeError(f"{path} holds no usable secret key (fewer than 32 "
                           "characters); delete it to have a new one created")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s is readable by other users; it should be mode 0600", path)
    return key


def _under_machine_api() -> bool:
    """The machine APIs' paths (for /fhir the same test web.errors uses to choose
    OperationOutcomes)."""
    return any(request.path == prefix or request.path.startswith(prefix + "/")
               for prefix in MACHINE_PREFIXES)


def _csrf_failed(error: CSRFError) -> tuple[Response | str, int]:
    """A 400 the person (or script) can act on; the precise reason only goes to the log."""
    log.info("CSRF check failed on %s %s: %s", request.method,
             request.url_rule.rule if request.url_rule else "(no route)", error.description)
    if _wants_json():
        return jsonify(error="csrf", message=EXPIRED_MESSAGE), 400
    return _EXPIRED_PAGE.format(message=escape(EXPIRED_MESSAGE)), 400


def _wants_json() -> bool:
    """True for fetch()/XHR callers: a JSON body, or JSON preferred over HTML."""
    if request.is_json:
        return True
    return request.accept_mimetypes.best_match(("text/html", "application/json")) == \
        "application/json"
