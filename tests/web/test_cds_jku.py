"""CDS clients whose keys sit behind a ``jku``: fetched from exactly the configured URL,
cached, refetched for a rotated key at most once per interval, refused when unreachable.

The EHR's key server is a real HTTP server on 127.0.0.1 in a thread, counting the
requests it gets; an attacker's key server beside it must never be asked anything.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from joserfc.jwk import KeySet, RSAKey

from plugin.web import cds_auth
from tests.support import cds, loopback
from tests.support.cds import PATIENT_VIEW
from tests.support.jwt_keys import CdsClient

ISSUER = "https://remote-ehr.example.org"
#: One issuer per test, each with its own jku on the key server (so its own key cache,
#: in one app for the module).
NAMES = ("cached", "rotated", "flood", "other-jku", "down", "not-json", "too-big",
         "no-keys", "broken-key", "private")


class KeyServer(loopback.Threaded):
    """JWK Sets on loopback: ``documents[path]`` is what it serves at ``path`` (bytes
    or JSON; 404 for others); ``paths`` every path it was asked for."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.paths: list[str] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(loopback.Quiet):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with owner.lock:
                    owner.paths.append(self.path)
                    document = owner.documents.get(self.path)
                if document is None:
                    self.send_error(404)
                    return
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                loopback.send(self, 200, body, "application/json")

        super().__init__(Handler)

    def requests(self, path: str) -> int:
        with self.lock:
            return self.paths.count(path)


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def closed_url() -> str:
    """A loopback URL nothing listens at (a server started and closed)."""
    server = KeyServer()
    server.close()
    return f"{server.base}/jwks.json"


def _path(name: str) -> str:
    return f"/{name}/jwks.json"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, keys: KeyServer,  # type: ignore[no-untyped-def]
        closed_url: str):
    clients: dict[str, Any] = {f"https://{n}.example": {"jku": keys.base + _path(n)}
                               for n in NAMES}
    clients["https://down.example"] = {"jku": closed_url}
    with cds.app_with(tmp_path_factory.mktemp("jku"), {
            "CDS_HOOKS_FETCH_TIMEOUT_SECONDS": 2, "CDS_HOOKS_CLIENTS": clients}) as made:
        yield made


def _ehr(name: str) -> CdsClient:
    return CdsClient(f"https://{name}.example")


def _call(app: Flask, ehr: CdsClient, **sign: Any):  # type: ignore[no-untyped-def]
    return cds.post(app.test_client(), ehr, PATIENT_VIEW, cds.body("patient-view"), **sign)


def _refused(response, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.get_data(as_text=True)
    assert reason in cds.refusal(response)[1], response.get_json()


def test_keys_are_fetched_from_the_jku_and_cached(app, keys) -> None:
    ehr = _ehr("cached")
    keys.documents[_path("cached")] = ehr.jwks()
    assert keys.requests(_path("cached")) == 0  # nothing is fetched at start-up
    assert _call(app, ehr).status_code == 200
    assert _call(app, ehr, alg="ES384").status_code == 200
    assert _call(app, ehr, header={"jku": keys.base + _path("cached")}).status_code == 200
    assert keys.requests(_path("cached")) == 1  # one request for all three calls


def test_the_cache_lasts_the_configured_time(make_app, keys) -> None:
    ehr = CdsClient(ISSUER)
    keys.documents["/zero/jwks.json"] = ehr.jwks()
    app = make_app({"CDS_HOOKS_CLIENTS": {ISSUER: {"jku": keys.base + "/zero/jwks.json"}},
                    "CDS_HOOKS_JWKS_CACHE_SECONDS": 0})
    assert _call(app, ehr).status_code == 200
    assert _call(app, ehr).status_code == 200
    assert keys.requests("/zero/jwks.json") == 2


def test_a_rotated_key_is_picked_up(app, keys) -> None:
    ehr = _ehr("rotated")
    keys.documents[_path("rotated")] = ehr.jwks()
    assert _call(app, ehr).status_code == 200
    rotated = _ehr("rotated")
    rotated.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
    keys.documents[_path("rotated")] = KeySet([ehr.rsa, rotated.rsa]).as_dict(private=False)
    assert _call(app, rotated).status_code == 200
    assert keys.requests(_path("rotated")) == 2
    assert _call(app, ehr).status_code == 200  # the old key is still published
    assert keys.requests(_path("rotated")) == 2


def test_a_flood_of_unknown_kids_costs_the_key_server_one_request(app, keys) -> None:
    ehr = _ehr("flood")
    keys.documents[_path("flood")] = ehr.jwks()
    assert _call(app, ehr).status_code == 200
    for n in range(10):
        _refused(_call(app, ehr, header={"kid": f"made-up-{n}"}), "kid is not one of")
    assert keys.requests(_path("flood")) == 2  # the first fetch and one refetch
    assert _call(app, ehr).status_code == 200


def test_a_token_naming_another_jku_is_refused_without_asking_it(app, keys) -> None:
    ehr = _ehr("other-jku")
    keys.documents[_path("other-jku")] = ehr.jwks()
    attacker = KeyServer()
    try:
        attacker.documents["/jwks.json"] = ehr.jwks()
        _refused(_call(app, ehr, header={"jku": f"{attacker.base}/jwks.json"}), "jku")
        assert attacker.paths == [] and keys.requests(_path("other-jku")) == 0
    finally:
        attacker.close()


def test_an_unreachable_key_server_refuses_the_call(app, closed_url, caplog) -> None:
    ehr = _ehr("down")
    token = ehr.sign(PATIENT_VIEW)
    with caplog.at_level(logging.INFO):
        response = _call(app, ehr, token=token)
    _refused(response, "keys could not be fetched from its jku (cannot connect)")
    assert f"fetching the keys of client https://down.example from {closed_url} " \
           "failed: cannot connect" in caplog.text
    assert token not in caplog.text and token.split(".")[1] not in caplog.text
    # the next call does not try again at once: refused until the interval passes
    _refused(_call(app, ehr), "retried at most every 15 s")


@pytest.mark.parametrize("name, document, reason", [
    ("not-json", b"<html>not json</html>", "not JSON"),
    ("too-big", b"{" + b" " * (70 * 1024) + b"}", "larger than 65536 bytes"),
    ("no-keys", {"keys": "none"}, "not a usable JWK Set"),
    ("broken-key", {"keys": [{"kty": "RSA", "kid": "x"}]}, "not a usable JWK Set"),
])
def test_a_bad_key_document_refuses_the_call(app, keys, name: str, document: Any,
                                             reason: str) -> None:
    keys.documents[_path(name)] = document
    _refused(_call(app, _ehr(name)), reason)


def test_published_private_keys_are_refused(app, keys) -> None:
    ehr = _ehr("private")
    keys.documents[_path("private")] = KeySet([ehr.rsa]).as_dict(private=True)
    _refused(_call(app, ehr), "private key")


def test_a_plain_http_jku_to_another_host_stops_start_up(make_app) -> None:
    with pytest.raises(ValueError, match="https"):
        make_app({"CDS_HOOKS_CLIENTS": {ISSUER: {"jku": "http://keys.example.org/jwks.json"}}})


# --- the cache on its own clock ------------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_remote_keys_refetch_after_the_interval_and_the_cache_time() -> None:
    ehr = CdsClient(ISSUER)
    fetched: list[str] = []

    def fetch(url: str) -> Any:
        fetched.append(url)
        return ehr.jwks()

    clock = _Clock()
    remote = cds_auth.RemoteKeys(ISSUER, "https://keys.example/jwks.json", fetch,
                                 cache_seconds=300, min_interval=15, clock=clock)
    remote.key_set("rsa-1")
    remote.key_set("unknown")  # refetch 1
    remote.key_set("unknown")
    clock.now += 10
    remote.key_set("unknown")  # still within the interval
    assert len(fetched) == 2
    clock.now += 10
    remote.key_set("unknown")  # interval over: one more
    assert len(fetched) == 3
    clock.now += 300
    remote.key_set("rsa-1")  # the cache ran out
    assert fetched == ["https://keys.example/jwks.json"] * 4
