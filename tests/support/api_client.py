"""An integrator of the FHIR API for tests: a SMART Backend Services client registered
in the app's database, its signed client assertions, and the token it gets."""
from __future__ import annotations

import datetime as dt
from typing import Any

from plugin.adapters import clients, store as storage
from plugin.core import scopes
from tests.support.jwt_keys import CdsClient

TOKEN_URL = "http://localhost/auth/token"
FHIR = "http://localhost/fhir"
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NOW = dt.datetime(2026, 12, 6, 6, 0, tzinfo=dt.timezone.utc)


class Integrator(CdsClient):
    """A backend service: its key pairs (RS384 ``rsa-1``, ES384 ``ec-1``) and client id."""

    def assertion(self, *, aud: str = TOKEN_URL, **kwargs: Any) -> str:
        kwargs.setdefault("sub", self.iss)
        return self.sign(aud, **kwargs)


def register(app: Any, scope: str = "system/Observation.rs system/QuestionnaireResponse.cr",
             *, jwks: dict | None = None, jwks_url: str | None = None,
             name: str = "Lab integrator") -> Integrator:
    integrator = Integrator("pending")
    client = clients.add(storage.from_app(app), name,
                         jwks=None if jwks_url else (jwks or integrator.jwks()),
                         jwks_url=jwks_url, scopes=scopes.parse_all(scope), now=NOW)
    integrator.iss = client.id
    return integrator


def ask(app: Any, integrator: Integrator, scope: str = "system/Observation.rs",
        assertion: str | None = None, **form: str) -> Any:
    data = {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION,
            "client_assertion": assertion or integrator.assertion(), **form}
    return app.test_client().post("/auth/token", data=data)


def token(app: Any, integrator: Integrator, scope: str = "system/Observation.rs") -> str:
    response = ask(app, integrator, scope)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}
