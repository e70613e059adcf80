"""``python -m plugin clients …`` as an administrator runs it: the client id on stdout,
bad keys or scopes refused in one line with exit 2, nothing stored."""
from __future__ import annotations

import json

import pytest

from tests.support.cli import run, write
from tests.support.jwt_keys import CdsClient


@pytest.fixture()
def env(tmp_path):
    return {"PLUGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'clients.sqlite3'}",
            "PLUGIN_SECRET_KEY": "cli-test"}


def test_add_list_and_disable(env, tmp_path) -> None:
    jwks = write(tmp_path, "jwks.json", CdsClient("x").jwks())
    added = run("clients", "add", "Lab integrator", "--jwks", jwks, "--scope",
                "system/Observation.rs system/QuestionnaireResponse.cr", env=env)
    assert added.returncode == 0, added.stderr
    client_id = added.stdout.strip()
    assert len(client_id) == 36 and client_id in added.stderr
    assert "system/Observation.rs system/QuestionnaireResponse.cr" in added.stderr
    by_url = run("clients", "add", "Registry", "--jwks-url", "https://registry.example/jwks",
                 "--scope", "system/*.rs", env=env)
    assert by_url.returncode == 0, by_url.stderr
    listed = json.loads(run("clients", "list", "--format", "json", env=env).stdout)
    assert [(c["name"], c["scope"], c["keys"], c["active"]) for c in listed] == [
        ("Lab integrator", "system/Observation.rs system/QuestionnaireResponse.cr",
         "inline JWK Set", True),
        ("Registry", "system/*.rs", "https://registry.example/jwks", True)]
    assert listed[0]["client_id"] == client_id
    disabled = run("clients", "disable", "Lab integrator", env=env)
    assert disabled.returncode == 0 and "its tokens stop working" in disabled.stderr
    assert f"{client_id}\tLab integrator\tdisabled" in run("clients", "list", env=env).stdout


@pytest.mark.parametrize(("scope", "message"), [
    ("patient/Observation.rs", "only system/ scopes"),
    ("system/Observation.sr", "in-order subset of cruds"),
    ("system/Observation.rx", "in-order subset of cruds"),
    ("system/Encounter.r", "not a resource type this server serves"),
    ("system/Observation.read", "in-order subset of cruds"),
    ("system/Observation.rs?category=laboratory", "constraints"),
    ("launch", "not a SMART v2 scope"),
])
def test_a_bad_scope_is_refused(env, tmp_path, scope, message) -> None:
    jwks = write(tmp_path, "jwks.json", CdsClient("x").jwks())
    result = run("clients", "add", "X", "--jwks", jwks, "--scope", scope, env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert run("clients", "list", "--format", "json", env=env).stdout.strip() == "[]"


def test_bad_keys_and_names_are_refused(env, tmp_path) -> None:
    client = CdsClient("x")
    private = write(tmp_path, "private.json", {"keys": [client.rsa.as_dict(private=True)]})
    no_kid = {"keys": [{k: v for k, v in client.jwks()["keys"][0].items() if k != "kid"}]}
    cases = [
        (("--jwks", private), "private key"),
        (("--jwks", write(tmp_path, "nokid.json", no_kid)), "every key needs a kid"),
        (("--jwks", write(tmp_path, "bad.json", "{not json")), "bad.json"),
        (("--jwks-url", "http://keys.example.org/jwks"), "must be https"),
    ]
    for keys, message in cases:
        result = run("clients", "add", "X", *keys, "--scope", "system/Observation.r", env=env)
        assert result.returncode == 2, keys
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    jwks = write(tmp_path, "jwks.json", client.jwks())
    assert run("clients", "add", "X", "--jwks", jwks, "--scope", "system/Observation.r",
               env=env).returncode == 0
    again = run("clients", "add", "X", "--jwks", jwks, "--scope", "system/Observation.r",
                env=env)
    assert again.returncode == 2 and "already registered" in again.stderr
    missing = run("clients", "disable", "nobody", env=env)
    assert missing.returncode == 2 and "No client 'nobody'" in missing.stderr
