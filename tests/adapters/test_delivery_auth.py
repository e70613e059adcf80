"""Deliveries with SMART Backend Services tokens, and the EHR profile picked from the
CapabilityStatement, against the test EHR over real HTTP (tests/support/ehr.py: an
authorization server that checks every client assertion strictly, and a FHIR server
that requires its Bearer tokens and enforces a CapabilityStatement set by the test)."""
from __future__ import annotations

import json
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from joserfc.jwk import ECKey, KeySet, RSAKey

from plugin.adapters import backend, outbox, smart
from plugin.adapters.ehr_capability import Capabilities
from plugin.adapters.store import Store
from tests.adapters.test_delivery import EHR_ANA, MRN, TABLET, _sign_on_the_tablet, copies, \
    queue, worker
from tests.support.bundles import references
from tests.support.ehr import running_ehr
from tests.support.signin import signed_in

FAST = outbox.Policy(max_attempts=8, backoff_seconds=0)
RECORD_TYPES = ("QuestionnaireResponse", "Observation", "DocumentReference", "Device",
                "Provenance")


@pytest.fixture(scope="module")
def test_ehr(tmp_path_factory):
    with running_ehr(tmp_path_factory.mktemp("ehr")) as started:
        yield started


@pytest.fixture()
def ehr(test_ehr):
    test_ehr.reset()
    return test_ehr


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"RS384": RSAKey.generate_key(2048, parameters={"kid": "delivery-rsa"}),
            "ES384": ECKey.generate_key("P-384", parameters={"kid": "delivery-ec"})}


def entry(key: Any, client_id: str) -> dict[str, Any]:
    """The EHR_BACKEND_CLIENT setting for ``key``."""
    return {"client_id": client_id, "jwk": key.as_dict(private=True)}


def register(ehr, key: Any, client_id: str = "plugin-backend") -> backend.BackendTokens:
    """Register ``key`` with the EHR as a backend client; its token provider."""
    ehr.register_client(client_id, [], jwks=KeySet([key]).as_dict(private=False))
    return unregistered(ehr, key, client_id)


def unregistered(ehr, key: Any, client_id: str) -> backend.BackendTokens:
    client = smart.client_from(entry(key, client_id), default_scope=backend.DEFAULT_SCOPE)
    return backend.BackendTokens(ehr.fhir_base, client, timeout=5)


def work(store: Store, ehr, tokens: Any, *, profile: str = "auto", timeout: float = 5,
         on_unauthorized: Any = "forget") -> dict[str, int]:
    hook = getattr(tokens, "forget", None) if on_unauthorized == "forget" else on_unauthorized
    return outbox.work(store, worker_id="test", batch=10, lease_seconds=30,
                       base_url=ehr.fhir_base, profile=profile, timeout=timeout,
                       policy=FAST, token=tokens, on_unauthorized=hook,
                       identifier_system=MRN)


def issued(ehr) -> list[dict[str, Any]]:
    return [i for i in ehr.auth_state()["issued"] if i["grant_type"] == "client_credentials"]


def once_each(state: dict[str, Any]) -> Counter:
    held = copies(state)
    assert set(held.values()) == {1}, [k for k, n in held.items() if n > 1]
    return Counter(kind for kind, _ in held)


# -- tokens -----------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_backend_client_delivers_with_a_token_the_ehr_accepts(sqlite_store, kb, ehr, keys,
                                                                 alg) -> None:
    exams = [queue(sqlite_store, kb)[0] for _ in range(3)]
    tokens = register(ehr, keys[alg])
    asked: list[str] = []

    def per_job(job: outbox.Job) -> str | None:  # the seam a user-token lookup will use
        asked.append(job.exam_id)
        return tokens(job)

    assert work(sqlite_store, ehr, per_job, profile="transaction") == \
        {"claimed": 3, "delivered": 3, "retry": 0, "dead": 0, "held": 0}
    assert sorted(asked) == sorted(exams)
    assert [outbox.status_for(sqlite_store, e).state for e in exams] == ["delivered"] * 3
    # one token for the three jobs, asked for with the key's own algorithm
    assert [(i["client_id"], i["scope"]) for i in issued(ehr)] == \
        [("plugin-backend", backend.DEFAULT_SCOPE)]
    state = ehr.state()
    calls = [(a["method"], a["path"], a["sub"], a["ok"]) for a in state["auth"]]
    assert calls == [("POST", "/", "plugin-backend", True)] * 3
    assert ehr.auth_state()["rejected"] == []


def test_without_a_token_the_ehr_refuses_and_the_exam_waits(sqlite_store, kb, ehr) -> None:
    exam_id, _ = queue(sqlite_store, kb)
    assert work(sqlite_store, ehr, None, profile="transaction")["retry"] == 1
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.state == "pending"
    assert status.last_error.startswith("HTTP 401")
    assert "a Bearer access token is required" in status.last_error
    assert ehr.state()["resources"] == []


def test_the_token_is_reused_until_it_expires_then_renewed(sqlite_store, kb, ehr,
                                                           keys) -> None:
    # 31 s of life, of which the last 30 count as expired (smart.EXPIRY_MARGIN)
    ehr.configure(token_lifetime=smart.EXPIRY_MARGIN + 1)
    tokens = register(ehr, keys["ES384"])
    queue(sqlite_store, kb)
    assert work(sqlite_store, ehr, tokens, profile="transaction")["delivered"] == 1
    queue(sqlite_store, kb)
    assert work(sqlite_store, ehr, tokens, profile="transaction")["delivered"] == 1
    assert len(issued(ehr)) == 1  # still fresh: reused
    time.sleep(1.2)
    queue(sqlite_store, kb)
    assert work(sqlite_store, ehr, tokens, profile="transaction")["delivered"] == 1
    assert len(issued(ehr)) == 2  # expired: a new one, with a new assertion
    assert all(a["ok"] for a in ehr.state()["auth"])


def test_every_assertion_meets_the_lifetime_and_jti_rules(ehr, keys) -> None:
    """The authorization server refuses an assertion living over 5 minutes, a replayed
    jti, a wrong aud or algorithm: five tokens in a row, each with a new assertion,
    with both kinds of key, are all issued."""
    for alg in ("RS384", "ES384"):
        tokens = register(ehr, keys[alg], f"client-{alg}")
        seen = set()
        for _ in range(5):
            seen.add(tokens.token())
            tokens.forget()
        assert len(seen) == 5
    assert ehr.auth_state()["rejected"] == []
    assert len(issued(ehr)) == 10


def test_a_refused_client_leaves_the_exam_waiting_with_the_reason_on_its_record(
        make_app, ehr, keys) -> None:
    from plugin.adapters import store as storage

    app = make_app({**TABLET, "EHR_FHIR_BASE_URL": ehr.fhir_base})
    client = signed_in(app)
    exam_id = _sign_on_the_tablet(client)
    store = storage.from_app(app)
    ehr.seed(EHR_ANA)
    tokens = unregistered(ehr, keys["RS384"], "not-registered")
    assert work(store, ehr, tokens)["retry"] == 1
    status = outbox.status_for(store, exam_id)
    assert status.state == "pending"
    assert status.last_error == (
        "could not get an EHR token: the backend services token request was refused: "
        "invalid_client (client_credentials needs a client with jwks)")
    page = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert 'id="delivery">Waiting to send' in page
    assert "could not get an EHR token" in page and "invalid_client" in page
    assert ehr.state()["posts"] == 0  # nothing went to the FHIR server without a token
    # once the EHR registers the client, the next attempt goes through
    ehr.register_client("not-registered", [],
                        jwks=KeySet([keys["RS384"]]).as_dict(private=False))
    assert work(store, ehr, tokens)["delivered"] == 1
    assert 'id="delivery">Sent to the EHR on ' in \
        client.get(f"/exams/{exam_id}/record").get_data(as_text=True)


def test_an_ehr_without_a_smart_configuration_is_said_in_words(sqlite_store, kb, ehr,
                                                               keys) -> None:
    exam_id, _ = queue(sqlite_store, kb)
    client = smart.client_from(entry(keys["ES384"], "plugin-backend"),
                               default_scope=backend.DEFAULT_SCOPE)
    nowhere = backend.BackendTokens(ehr.fhir_base + "/nowhere", client, timeout=5)
    assert work(sqlite_store, ehr, nowhere)["retry"] == 1
    assert outbox.status_for(sqlite_store, exam_id).last_error == (
        "could not get an EHR token: reading the EHR's SMART configuration failed: HTTP 404")


def test_a_401_from_the_ehr_is_retried_with_a_fresh_token(sqlite_store, kb, ehr,
                                                          keys) -> None:
    exam_id, bundle = queue(sqlite_store, kb)
    tokens = register(ehr, keys["RS384"])
    forgotten: list[str] = []

    def on_unauthorized(job: outbox.Job) -> None:
        forgotten.append(job.exam_id)
        tokens.forget(job)

    # the authorization server issues a token for another audience: the EHR refuses it
    ehr.configure(fhir_base="http://127.0.0.1:9/another-ehr")
    counts = work(sqlite_store, ehr, tokens, on_unauthorized=on_unauthorized)
    assert counts["retry"] == 1 and forgotten == [exam_id]
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.state == "pending"
    assert "HTTP 401" in status.last_error and "aud" in status.last_error
    ehr.configure()  # back to this EHR's audience
    assert work(sqlite_store, ehr, tokens, on_unauthorized=on_unauthorized)["delivered"] == 1
    assert len(issued(ehr)) == 2  # the refused token was not used again
    assert sum(copies(ehr.state()).values()) == len(bundle["entry"])


def test_a_401_without_the_hook_keeps_the_refused_token(sqlite_store, kb, ehr, keys):
    """What the hook is for: without it, the cached token is sent again and refused."""
    queue(sqlite_store, kb)
    tokens = register(ehr, keys["RS384"])
    ehr.configure(fhir_base="http://127.0.0.1:9/another-ehr")
    assert work(sqlite_store, ehr, tokens, on_unauthorized=None)["retry"] == 1
    ehr.configure()
    assert work(sqlite_store, ehr, tokens, on_unauthorized=None)["retry"] == 1
    assert len(issued(ehr)) == 1


# -- the profile from the CapabilityStatement -------------------------------------------

def capability(**types: dict[str, Any]) -> dict[str, Any]:
    transaction = types.pop("transaction", False)
    rest: dict[str, Any] = {"mode": "server", "resource": [
        {"type": kind, "interaction": [{"code": c} for c in spec["interactions"]],
         **({"conditionalCreate": True} if spec.get("conditional") else {}),
         **({"searchParam": [{"name": "identifier", "type": "token"}]}
            if "search-type" in spec["interactions"] else {})}
        for kind, spec in types.items()],
        # a search every type offers, as many servers declare it (a Provenance is found
        # again by the plugin's tag)
        "searchParam": [{"name": "_tag", "type": "token"}]}
    if transaction:
        rest["interaction"] = [{"code": "transaction"}]
    return {"resourceType": "CapabilityStatement", "status": "active", "date": "2026-11-21",
            "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"], "rest": [rest]}


CONDITIONAL = {"interactions": ("create", "read", "search-type"), "conditional": True}
SEARCH_ONLY = {"interactions": ("create", "read", "search-type")}
CREATE_ONLY = {"interactions": ("create",)}

TRANSACTION = capability(transaction=True, **{kind: CONDITIONAL for kind in RECORD_TYPES})
# no transactions; the Device cannot be created (the Provenance names it by identifier)
INDIVIDUAL = capability(QuestionnaireResponse=CONDITIONAL, Observation=CONDITIONAL,
                        DocumentReference=CONDITIONAL, Provenance=CONDITIONAL,
                        Device={"interactions": ("read",)})
# no conditional create at all: the document is looked for by identifier first; the
# Provenance cannot be found again (it has no identifier), so it is not sent
DOCUMENT_ONLY = capability(transaction=True, QuestionnaireResponse=CREATE_ONLY,
                           Observation=CREATE_ONLY, DocumentReference=SEARCH_ONLY,
                           Provenance=CREATE_ONLY, Device=CREATE_ONLY)


def delivered_after_a_late_answer(store: Store, kb: Any, ehr, keys: dict[str, Any],
                                  statement: dict[str, Any]) -> tuple[dict, dict]:
    """An exam with a document, queued for an EHR with ``statement``: the EHR takes the
    first attempt but answers after the worker gave up, and the retry delivers. The
    exam's Bundle and the EHR's state."""
    ehr.capability(statement)
    exam_id, bundle = queue(store, kb, with_document=True)
    tokens = register(ehr, keys["ES384"])
    ehr.faults([{"delay": 1.0}])
    assert work(store, ehr, tokens, timeout=0.3)["retry"] == 1
    assert "timeout" in outbox.status_for(store, exam_id).last_error
    time.sleep(1.2)
    assert work(store, ehr, tokens)["delivered"] == 1
    return bundle, ehr.state()


def test_auto_sends_one_transaction_when_the_ehr_takes_it(sqlite_store, kb, ehr, keys):
    # the EHR commits, but its answer comes after the worker gave up
    bundle, state = delivered_after_a_late_answer(sqlite_store, kb, ehr, keys, TRANSACTION)
    assert [b["resourceType"] for b in state["bodies"]] == ["Bundle", "Bundle"]
    assert [(a["method"], a["path"]) for a in state["auth"]] == [("POST", "/")] * 2
    held = once_each(state)
    assert sum(held.values()) == len(bundle["entry"])
    assert set(held) == set(RECORD_TYPES)


def test_auto_sends_entry_by_entry_when_the_ehr_has_no_transactions(sqlite_store, kb, ehr,
                                                                    keys) -> None:
    ehr.capability(INDIVIDUAL)
    exam_id, bundle = queue(sqlite_store, kb, with_document=True)
    tokens = register(ehr, keys["RS384"])
    # the first attempt is cut off at the fourth create: three are in the EHR already
    ehr.faults([{}, {}, {}, {"drop": True}])
    assert work(sqlite_store, ehr, tokens)["retry"] == 1
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.last_error.startswith("Observation (4 of ")
    assert "connection" in status.last_error
    assert len(ehr.state()["resources"]) == 3
    assert work(sqlite_store, ehr, tokens)["delivered"] == 1
    state = ehr.state()
    sent = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Device"]
    # every POST a single resource; the three already in were not sent again
    assert all(b["resourceType"] != "Bundle" for b in state["bodies"])
    assert len(state["bodies"]) == len(sent) + 1  # the retry sent only the missing
    held = once_each(state)
    assert held == Counter(e["resource"]["resourceType"] for e in sent)
    # references point at the ids the EHR gave, none at the Bundle's urn:uuids
    by_type = {r["resourceType"]: r for r in state["resources"]}
    qr = f"QuestionnaireResponse/{by_type['QuestionnaireResponse']['id']}"
    ids = {f"{r['resourceType']}/{r['id']}" for r in state["resources"]}
    for resource in state["resources"]:
        for reference in references(resource):
            assert not reference.startswith("urn:uuid:")
            assert reference in ids or reference.split("/")[0] not in RECORD_TYPES
    observation = next(r for r in state["resources"] if r["resourceType"] == "Observation")
    assert observation["derivedFrom"] == [{"reference": qr, "type": "QuestionnaireResponse"}]
    provenance = by_type["Provenance"]
    assert len(provenance["target"]) == len(sent) - 2  # all but the QR and itself
    device = next(a["who"] for a in provenance["agent"] if "Device" in json.dumps(a))
    assert "reference" not in device and device["identifier"]["value"].startswith(
        "posterior-thigh-exam-plugin/")


def test_auto_sends_the_document_alone_found_first_when_the_ehr_has_no_conditional_create(
        sqlite_store, kb, ehr, keys) -> None:
    # the EHR stores the document but answers after the worker gave up
    bundle, state = delivered_after_a_late_answer(sqlite_store, kb, ehr, keys, DOCUMENT_ONLY)
    # searched before each attempt; created once (the retry found it)
    assert [(a["method"], a["path"]) for a in state["auth"]] == [
        ("GET", "/DocumentReference"), ("POST", "/DocumentReference"),
        ("GET", "/DocumentReference")]
    assert once_each(state) == Counter({"DocumentReference": 1})
    document = state["resources"][0]
    kept = next(e for e in bundle["entry"]
                if e["resource"]["resourceType"] == "DocumentReference")
    assert document["identifier"] == kept["resource"]["identifier"]
    assert "urn:uuid:" not in json.dumps(document)  # the QR is named by identifier


def test_auto_does_not_send_what_it_could_only_create_blindly(sqlite_store, kb, ehr,
                                                              keys) -> None:
    ehr.capability(capability(DocumentReference=CREATE_ONLY))
    exam_id, _ = queue(sqlite_store, kb, with_document=True)
    assert work(sqlite_store, ehr, register(ehr, keys["RS384"]))["dead"] == 1
    assert "a retry could duplicate" in outbox.status_for(sqlite_store, exam_id).last_error
    assert ehr.state()["posts"] == 0


def test_the_capability_statement_is_kept_for_a_while(ehr) -> None:
    now = [0.0]
    kept = Capabilities(ehr.fhir_base, timeout=5, ttl=300, clock=lambda: now[0])
    ehr.capability(TRANSACTION)
    assert kept.statement(None) == TRANSACTION
    ehr.capability(DOCUMENT_ONLY)
    now[0] = 299.0
    assert kept.statement(None) == TRANSACTION  # not read again yet
    now[0] = 300.0
    assert kept.statement(None) == DOCUMENT_ONLY
    ehr.capability(INDIVIDUAL)
    kept.forget()
    assert kept.statement(None) == INDIVIDUAL


def test_an_unreadable_capability_statement_leaves_the_exam_waiting(sqlite_store, kb,
                                                                    ehr) -> None:
    exam_id, _ = queue(sqlite_store, kb)
    missing = ehr.fhir_base + "/nowhere"
    assert outbox.work(sqlite_store, worker_id="test", batch=10, lease_seconds=30,
                       base_url=missing, profile="auto", timeout=5,
                       policy=FAST)["retry"] == 1
    assert outbox.status_for(sqlite_store, exam_id).last_error.startswith(
        "reading the EHR's CapabilityStatement: HTTP 404")


# -- the worker process -----------------------------------------------------------------

def test_the_worker_delivers_with_the_configured_backend_client(sqlite_store, kb, ehr,
                                                                keys) -> None:
    ehr.capability(INDIVIDUAL)
    exam_id, _ = queue(sqlite_store, kb, with_document=True)
    ehr.register_client("plugin-backend", [],
                        jwks=KeySet([keys["ES384"]]).as_dict(private=False))
    process = worker(ehr.fhir_base, str(sqlite_store.engine.url), "--once",
                     EHR_BACKEND_CLIENT=entry(keys["ES384"], "plugin-backend"))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert outbox.status_for(sqlite_store, exam_id).state == "delivered"
    assert len(issued(ehr)) == 1
    assert all(a["ok"] and a["sub"] == "plugin-backend" for a in ehr.state()["auth"])
    assert keys["ES384"].as_dict(private=True)["d"] not in err  # never the key


@pytest.mark.parametrize(("setting", "words"), [
    ({"jwk": {"kty": "EC"}}, "needs a client_id"),
    ({"client_id": "plugin-backend"}, "need a private key"),
    ({"client_id": "plugin-backend", "jwk_file": "/nonexistent/key.json"},
     "cannot read the SMART client's jwk_file"),
    ({"client_id": "plugin-backend",
      "jwk": {"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", "kid": "x"}},
     "must be a private RSA or EC"),
])
def test_an_unusable_backend_client_is_named(setting, words) -> None:
    settings = SimpleNamespace(config={"EHR_FHIR_BASE_URL": "http://127.0.0.1:9/fhir",
                                       "EHR_BACKEND_CLIENT": setting})
    with pytest.raises(ValueError, match=words):
        backend.delivery_token_provider(settings, store=None)  # type: ignore[arg-type]


def test_no_backend_client_means_no_token() -> None:
    settings = SimpleNamespace(config={"EHR_FHIR_BASE_URL": "http://127.0.0.1:9/fhir",
                                       "EHR_BACKEND_CLIENT": {}})
    assert backend.delivery_token_provider(settings, store=None) is None  # type: ignore


def test_an_unusable_backend_client_stops_the_worker(tmp_path) -> None:
    process = worker("http://127.0.0.1:9/fhir", f"sqlite:///{tmp_path / 'x.sqlite3'}",
                     "--once", EHR_BACKEND_CLIENT={"client_id": "plugin-backend"})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "error: EHR_BACKEND_CLIENT: backend services need a private key" in err


def test_a_strict_ehr_with_a_refused_token_still_gets_every_exam_complete_once(
        sqlite_store, kb, ehr, keys) -> None:
    """The 401 fault against the strict EHR (tests/adapters/test_delivery_strict.py has
    the others): the backend token also finds the tablet patient (system/Patient.rs)."""
    from tests.adapters.test_delivery_strict import ALL, EHR_RUTH, queue_typed

    ehr.seed(EHR_RUTH)
    ehr.strict(**ALL)
    exam_id, bundle = queue_typed(sqlite_store, kb)
    tokens = register(ehr, keys["ES384"])
    ehr.configure(fhir_base="http://127.0.0.1:9/another-ehr")  # tokens the EHR refuses
    assert work(sqlite_store, ehr, tokens)["retry"] == 1
    assert "HTTP 401" in outbox.status_for(sqlite_store, exam_id).last_error
    ehr.configure()
    for _ in range(3):  # the entry limit is learned on the way
        if work(sqlite_store, ehr, tokens)["delivered"]:
            break
    assert outbox.status_for(sqlite_store, exam_id).state == "delivered"
    state = ehr.state()
    assert sum(once_each(state).values()) == len(bundle["entry"]) + 1  # + the EHR's Patient
    assert {r["subject"]["reference"] for r in state["resources"] if "subject" in r} == \
        {"Patient/ehr-ruth-osei"}
    assert ("GET", "/Patient", "plugin-backend", True) in [
        (a["method"], a["path"], a["sub"], a["ok"]) for a in state["auth"]]
