"""Tokens for deliveries to the EHR: SMART Backend Services (fhir.md section 4.3).

A delivery worker has no user: it authenticates as the plugin itself, with a
``client_credentials`` grant and a short-lived assertion signed by the key registered
with the EHR (``EHR_BACKEND_CLIENT``; ``smart.backend_token`` signs each assertion with
fresh claims, so no ``jti`` is ever reused). ``BackendTokens`` finds the token endpoint
in ``{EHR_FHIR_BASE_URL}/.well-known/smart-configuration`` once (again after a failure,
in case the EHR moved it), keeps the token until it is about to expire (SMART tokens
live about five minutes: one token serves many deliveries), and drops it when the EHR
answers 401 (``forget``), so the retry asks for a new one. One lock serialises the
fetches: several threads needing a token at once make one request.

``delivery_token_provider`` is what the worker uses: the exam's own SMART user token
while the launch's authorization lasts (``launches.LaunchTokens``), this backend token
otherwise.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from . import smart

if TYPE_CHECKING:
    from .outbox import Job
    from .store import Store

__all__ = ["DEFAULT_SCOPE", "BackendTokens", "TokenProvider", "delivery_token_provider"]

#: What a delivery asks for when ``EHR_BACKEND_CLIENT`` names no scope (SMART v2): create
#: and search (for EHRs without conditional create, a search comes first) of every type
#: the record holds, and read and search of patients (a patient typed on the tablet is
#: looked up by identifier: ``ehr_patient``).
DEFAULT_SCOPE = " ".join(f"system/{kind}.cs" for kind in (
    "QuestionnaireResponse", "Observation", "Condition", "ServiceRequest",
    "DocumentReference", "Provenance", "Device")) + " system/Patient.rs"


class TokenProvider(Protocol):
    """The bearer token for one delivery (None: send none), and what to do when the
    EHR refused it (``forget``, the worker's ``on_unauthorized``). Raises
    ``smart.SmartError`` when no token can be had."""

    def __call__(self, job: Job) -> str | None: ...

    def forget(self, job: Job | None = None) -> None: ...


class BackendTokens:
    """A backend-services access token for ``base_url``'s EHR, cached until it expires.
    Thread-safe; errors are ``smart.SmartError`` (words safe to show)."""

    def __init__(self, base_url: str, client: smart.Client, *, timeout: float) -> None:
        if client.key is None:
            raise ValueError("backend services need a client with a private key (jwk or "
                             "jwk_file)")
        self._base_url = base_url
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._config: smart.Configuration | None = None
        self._token: smart.Token | None = None

    def token(self) -> str:
        """The cached access token, or a new one when there is none or it expired."""
        with self._lock:
            if self._token is not None and not self._token.expired():
                return self._token.access_token
            self._token = None
            try:
                if self._config is None:
                    self._config = smart.discover(self._base_url, timeout=self._timeout)
                self._token = smart.backend_token(self._config, self._client,
                                                  timeout=self._timeout)
            except smart.SmartError:
                self._config = None  # discover again next time
                raise
            return self._token.access_token

    def forget(self, job: Job | None = None) -> None:
        """Drop the cached token (the EHR refused it); ``job`` is accepted so that this
        can be the worker's ``on_unauthorized`` hook."""
        with self._lock:
            self._token = None

    def __call__(self, job: Job) -> str:
        return self.token()


def delivery_token_provider(app: Any, store: Store) -> TokenProvider | None:
    """The worker's token provider from the app's settings: the exam's own SMART launch
    token while it lasts (``launches.LaunchTokens``, when ``SMART_CLIENTS`` is set),
    else a ``BackendTokens`` for ``EHR_BACKEND_CLIENT``; None when neither is set
    (deliveries go without a token). A ValueError names what is wrong with a setting."""
    from . import launches

    config: Mapping[str, Any] = app.config
    try:
        timeout = float(config.get("SMART_TIMEOUT_SECONDS") or 10)
    except (TypeError, ValueError):
        raise ValueError("SMART_TIMEOUT_SECONDS must be a number of seconds") from None
    base_url = str(config["EHR_FHIR_BASE_URL"])
    backend: BackendTokens | None = None
    entry = config.get("EHR_BACKEND_CLIENT") or {}
    if entry:
        client = smart.client_from(entry, default_scope=DEFAULT_SCOPE)
        if client.key is None:
            raise ValueError("backend services need a private key (jwk or jwk_file): the "
                             "token request is authenticated with a signed assertion")
        backend = BackendTokens(base_url, client, timeout=timeout)
    clients = config.get("SMART_CLIENTS") or {}
    if not clients:
        return backend
    for launch_entry in clients.values():  # unusable settings fail now, not per job
        smart.client_from(launch_entry)
    return launches.LaunchTokens(store, launches.Sealer(app.secret_key or ""), clients,
                                 base_url, timeout=timeout, fallback=backend)
