"""An integrator against the service as deployed (gunicorn, real HTTP): registered with
the CLI, it gets a token, reads the Observations of a signed exam and calls $extract;
its assertion replayed at a second service process on the same database is refused."""
from __future__ import annotations

from pathlib import Path

import requests

from plugin import create_app
from plugin.adapters import store as storage
from tests.support import tablet
from tests.support.api_client import ASSERTION, Integrator
from tests.support.cli import run, write
from tests.support.served import serve

#: Both processes stand behind one public name (a load balancer), as in production.
PUBLIC = "https://exam.example.org"


def _seed(database: str, kb, form) -> str:  # type: ignore[no-untyped-def]
    """A signed exam in the database the services will use; its patient's id."""
    app = create_app({"TESTING": True, "SECRET_KEY": "seed", "DATABASE_URL": database})
    ana = tablet.patient(app)
    tablet.sign(app, kb, tablet.draft(app, form, ana), ana, tablet.MARCH)
    storage.from_app(app).dispose()
    return ana.id


def test_an_integrator_over_http(tmp_path: Path, kb, form) -> None:
    database = f"sqlite:///{tmp_path / 'exam.sqlite3'}"
    env = {"PLUGIN_DATABASE_URL": database, "PLUGIN_SECRET_KEY": "served-secret",
           "PLUGIN_FHIR_BASE_URL": f"{PUBLIC}/fhir",
           "PLUGIN_API_TOKEN_URL": f"{PUBLIC}/auth/token"}
    patient = _seed(database, kb, form)
    integrator = Integrator("pending")
    added = run("clients", "add", "Lab integrator", "--jwks",
                write(tmp_path, "jwks.json", integrator.jwks()), "--scope",
                "system/Observation.rs system/QuestionnaireResponse.c", env=env)
    assert added.returncode == 0, added.stderr
    integrator.iss = added.stdout.strip()
    with serve(tmp_path, env) as one, serve(tmp_path, env) as two:
        assertion = integrator.assertion(aud=f"{PUBLIC}/auth/token", alg="ES384")
        form_data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION,
                     "client_assertion": assertion,
                     "scope": "system/Observation.rs system/QuestionnaireResponse.c"}
        issued = requests.post(f"{one}/auth/token", data=form_data, timeout=10)
        assert issued.status_code == 200, issued.text
        assert issued.headers["Cache-Control"] == "no-store"
        access = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        # the same assertion at the other process: refused, it shares the jti memory
        replayed = requests.post(f"{two}/auth/token", data=form_data, timeout=10)
        assert replayed.status_code == 401
        assert replayed.json()["error"] == "invalid_client"
        assert "jti already used" in replayed.json()["error_description"]
        # the token works on either process (the table is shared too)
        found = requests.get(f"{two}/fhir/Observation", params={"patient": patient},
                             headers=access, timeout=10)
        assert found.status_code == 200, found.text
        assert found.json()["total"] > 0
        extracted = requests.post(f"{one}/fhir/QuestionnaireResponse/$extract",
                                  json={"slr.left.onset-angle": 40}, headers=access,
                                  timeout=10)
        assert extracted.status_code == 200, extracted.text
        assert extracted.json()["parameter"][0]["resource"]["type"] == "transaction"
        denied = requests.get(f"{one}/fhir/QuestionnaireResponse",
                              params={"patient": patient}, headers=access, timeout=10)
        assert denied.status_code == 403
        assert "system/QuestionnaireResponse.s" in denied.text
