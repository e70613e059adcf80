"""Delivery of signed exams to the EHR over real HTTP: a small FHIR server in its own
process (tests/support/fhir_server.py) with conditional creates and injected faults,
the outbox on SQLite and PostgreSQL, and worker processes that may be killed."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from plugin.adapters import ehr, outbox
from plugin.adapters.store import Store
from plugin.core import documents
from plugin.record import pipeline, signoff
from tests.core.test_documents import MINIMAL_PDF
from tests.support import rendering
from tests.support.signin import PASSWORD, signed_in

ROOT = Path(__file__).resolve().parents[2]
CASE = json.loads((ROOT / "tests/data/cases/normal-exam.json").read_text(encoding="utf-8"))
QUESTIONNAIRE = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam|0.1.0"
NOW = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.timezone.utc)
FAST = outbox.Policy(max_attempts=8, backoff_seconds=0)
#: The organisation's patient identifier system (PATIENT_IDENTIFIER_SYSTEM) and the
#: EHR's own record of the patient the tablet tests type in.
MRN = "https://hospital.example.org/mrn"
EHR_ANA = {"resourceType": "Patient", "id": "ehr-ana-silva",
           "identifier": [{"system": MRN, "value": "MRN-1"}],
           "name": [{"family": "Silva", "given": ["Ana"]}], "birthDate": "1986-03-14"}
#: The settings of an app whose tablet patients are found in the EHR by MRN.
TABLET = {"WTF_CSRF_ENABLED": False, "PATIENT_IDENTIFIER_SYSTEM": MRN}


class FhirServer:
    def __init__(self, tmp: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fhir_server", str(tmp / "fhir.json")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def _call(self, path: str, body: object = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         method="GET" if data is None else "POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def faults(self, *faults: dict) -> None:
        self._call("/_faults", list(faults))

    def strict(self, **switches: object) -> None:
        """Production servers' refusals (tests/support/fhir_server.py ``/_strict``)."""
        self._call("/_strict", switches)

    def seed(self, *resources: dict) -> None:
        self._call("/_seed", {"resources": list(resources)})

    def state(self) -> dict:
        return self._call("/_state")

    def reset(self) -> None:
        self._call("/_reset", {})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)
        self.process.stdout.close()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory):
    server = FhirServer(tmp_path_factory.mktemp("fhir"))
    yield server
    server.stop()


@pytest.fixture()
def server(fhir_server):
    fhir_server.reset()
    return fhir_server


def queue(store: Store, kb, *, with_document: bool = False) -> tuple[str, dict]:
    """A signed exam with its Bundle queued, as the tablet's sign-off does it."""
    patient = store.add_patient(CASE["patient"])
    record = store.create_exam(patient.id, QUESTIONNAIRE, answers=CASE["answers"],
                               draft={"resourceType": "QuestionnaireResponse"})
    signed = signoff.sign(kb, record.answers, record_id=record.id, patient=patient.resource,
                          signer=signoff.Signer("Dr Ana Costa"), signed_at=NOW, revision=1)
    docs = [documents.Document("summary", "Clinician summary", MINIMAL_PDF)] \
        if with_document else []
    bundle = pipeline.record(kb, signed.exam, plugin_version="test", recorded=NOW,
                             documents=docs)
    store.sign(record.id, expected_version=record.version, answers=record.answers,
               response=signed.response, provenance=signed.provenance,
               signed_by="Dr Ana Costa", signed_at=NOW, delivery=bundle)
    return record.id, bundle


def work(store: Store, url: str, *, policy: outbox.Policy = FAST, timeout: float = 5,
         profile: str = "transaction", **settings) -> dict:
    return outbox.work(store, worker_id="test", batch=10, lease_seconds=30, base_url=url,
                       profile=profile, timeout=timeout, policy=policy,
                       identifier_system=MRN, **settings)


def copies(state: dict) -> Counter:
    """How many resources the server holds per (type, identifier or creation)."""
    counted: Counter = Counter()
    for resource in state["resources"]:
        identifier = resource.get("identifier")
        if isinstance(identifier, list):
            identifier = identifier[0]
        key = (identifier or {}).get("value") or json.dumps(resource.get("target"))
        counted[(resource["resourceType"], key)] += 1
    return counted


def expected_copies(bundle: dict) -> int:
    return len(bundle["entry"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- enqueue ----------------------------------------------------------------------------

def test_signing_with_a_delivery_queues_it_with_the_revision(store, kb) -> None:
    exam_id, _ = queue(store, kb)
    status = outbox.status_for(store, exam_id)
    assert status is not None and (status.state, status.attempts, status.revision) == \
        ("pending", 0, 1)


def test_a_refused_signature_queues_nothing(store, kb) -> None:
    patient = store.add_patient(CASE["patient"])
    record = store.create_exam(patient.id, QUESTIONNAIRE, answers={}, draft={})
    with pytest.raises(Exception):
        store.sign(record.id, expected_version=record.version, answers={},
                   response={"resourceType": "QuestionnaireResponse", "status": "amended"},
                   provenance={}, signed_by="x", signed_at=NOW,
                   delivery={"resourceType": "Bundle"})
    assert outbox.status_for(store, record.id) is None
    assert outbox.claim(store, "w", 10, 30) == []


# -- delivery over HTTP -----------------------------------------------------------------

def test_a_signed_exam_is_delivered_once(sqlite_store, kb, server) -> None:
    exam_id, bundle = queue(sqlite_store, kb)
    assert work(sqlite_store, server.url) == {"claimed": 1, "delivered": 1, "retry": 0,
                                              "dead": 0, "held": 0}
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.state == "delivered" and status.delivered_at is not None
    assert work(sqlite_store, server.url)["claimed"] == 0
    state = server.state()
    assert state["posts"] == 1
    assert sum(copies(state).values()) == expected_copies(bundle)
    assert set(copies(state).values()) == {1}


def test_failures_are_retried_and_the_exam_lands_exactly_once(sqlite_store, kb, server):
    exam_id, bundle = queue(sqlite_store, kb)
    server.faults({"status": 500}, {"status": 503}, {"drop": True}, {"status": 429},
                  {"delay": 1.0})
    for expected in ("HTTP 500", "HTTP 503", "connection", "HTTP 429"):
        assert work(sqlite_store, server.url)["retry"] == 1
        assert expected in outbox.status_for(sqlite_store, exam_id).last_error
    # the EHR commits, but its answer comes after the client gave up
    assert work(sqlite_store, server.url, timeout=0.3)["retry"] == 1
    assert "timeout" in outbox.status_for(sqlite_store, exam_id).last_error
    time.sleep(1.2)  # the late commit is in
    assert work(sqlite_store, server.url)["delivered"] == 1
    status = outbox.status_for(sqlite_store, exam_id)
    assert (status.state, status.attempts, status.last_error) == ("delivered", 6, None)
    held = copies(server.state())
    assert sum(held.values()) == expected_copies(bundle) and set(held.values()) == {1}


def test_a_refused_bundle_is_dead_with_the_reason_in_words(sqlite_store, kb, server):
    exam_id, _ = queue(sqlite_store, kb)
    server.faults({"status": 400, "text": "Observation.code: unknown code system"})
    assert work(sqlite_store, server.url)["dead"] == 1
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.state == "dead"
    assert "HTTP 400" in status.last_error
    assert "Observation.code: unknown code system" in status.last_error
    assert "Osei" not in status.last_error  # never the payload
    assert work(sqlite_store, server.url)["claimed"] == 0


def test_retries_end_after_the_last_attempt(sqlite_store, kb, server):
    exam_id, _ = queue(sqlite_store, kb)
    server.faults({"status": 500}, {"status": 500})
    policy = outbox.Policy(max_attempts=2, backoff_seconds=0)
    assert work(sqlite_store, server.url, policy=policy)["retry"] == 1
    assert work(sqlite_store, server.url, policy=policy)["dead"] == 1
    assert outbox.status_for(sqlite_store, exam_id).state == "dead"


def test_an_ehr_that_is_down_leaves_the_exam_waiting_with_backoff(store, kb) -> None:
    exam_id, _ = queue(store, kb)
    before = dt.datetime.now(dt.timezone.utc)
    counts = work(store, f"http://127.0.0.1:{free_port()}",
                  policy=outbox.Policy(backoff_seconds=30))
    assert counts["retry"] == 1
    status = outbox.status_for(store, exam_id)
    assert status.state == "pending" and status.attempts == 1
    assert "cannot reach the EHR" in status.last_error
    assert before + dt.timedelta(seconds=15) <= status.next_attempt_at \
        <= before + dt.timedelta(seconds=35)
    assert outbox.claim(store, "w", 10, 30) == []  # not due yet


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    policy = outbox.Policy(backoff_seconds=30, cap_seconds=600)
    for attempt, full in ((1, 30), (2, 60), (3, 120), (10, 600)):
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1


@pytest.mark.parametrize(("status", "retryable"), [
    (400, False), (401, False), (404, False), (422, False),
    (408, True), (409, True), (412, True), (429, True), (500, True), (502, True)])
def test_which_http_failures_are_retried(server, status, retryable) -> None:
    server.faults({"status": status})
    result = ehr.post_transaction(server.url, {"resourceType": "Bundle", "type": "transaction",
                                               "entry": [{"fullUrl": "urn:uuid:1",
                                                          "resource": {"resourceType": "Basic"},
                                                          "request": {"method": "POST",
                                                                      "url": "Basic",
                                                                      "ifNoneExist": "identifier=x|1"}}]},
                                  timeout=5)
    assert (result.delivered, result.retryable, result.status) == (False, retryable, status)
    assert result.error.startswith(f"HTTP {status}")


def test_document_only_sends_the_documents_and_their_provenance(sqlite_store, kb, server):
    exam_id, bundle = queue(sqlite_store, kb, with_document=True)
    assert work(sqlite_store, server.url, profile="document-only")["delivered"] == 1
    sent = server.state()["bodies"][0]
    assert sorted(e["resource"]["resourceType"] for e in sent["entry"]) == \
        ["DocumentReference", "Provenance"]
    kept = {e["fullUrl"] for e in sent["entry"]}
    text = json.dumps(sent)
    for entry in bundle["entry"]:
        if entry["fullUrl"] not in kept:
            assert entry["fullUrl"] not in text  # no dangling references
    assert sorted(r["resourceType"] for r in server.state()["resources"]) == \
        ["DocumentReference", "Provenance"]


def test_document_only_without_a_document_is_not_sent_and_says_why(sqlite_store, kb, server):
    exam_id, _ = queue(sqlite_store, kb)
    assert work(sqlite_store, server.url, profile="document-only")["dead"] == 1
    assert "no document" in outbox.status_for(sqlite_store, exam_id).last_error
    assert server.state()["posts"] == 0


def test_individual_sends_entry_by_entry_and_a_retry_duplicates_nothing(sqlite_store, kb,
                                                                        server) -> None:
    exam_id, bundle = queue(sqlite_store, kb, with_document=True)
    server.faults({}, {"status": 503})  # the second create fails: one is in already
    assert work(sqlite_store, server.url, profile="individual")["retry"] == 1
    assert outbox.status_for(sqlite_store, exam_id).last_error.startswith(
        f"Observation (2 of {len(bundle['entry'])}): HTTP 503")
    assert work(sqlite_store, server.url, profile="individual")["delivered"] == 1
    state = server.state()
    # the retry sent only what was missing: the first entry was not sent again
    assert len(state["bodies"]) == 1 + len(bundle["entry"])
    held = copies(state)
    assert sum(held.values()) == expected_copies(bundle) and set(held.values()) == {1}
    assert "urn:uuid:" not in json.dumps(state["resources"])


# -- worker processes -------------------------------------------------------------------

def worker(url: str, database: str, *args: str, **settings: object) -> subprocess.Popen:
    env = {**os.environ, "PLUGIN_DATABASE_URL": database, "PLUGIN_EHR_FHIR_BASE_URL": url,
           "PLUGIN_SECRET_KEY": "test", "PLUGIN_DELIVERY_BACKOFF_SECONDS": "0",
           **{f"PLUGIN_{k}": json.dumps(v) for k, v in settings.items()}}
    return subprocess.Popen([sys.executable, "-m", "plugin", "deliver", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_the_worker_says_when_delivery_is_off(tmp_path) -> None:
    process = worker("", f"sqlite:///{tmp_path / 'x.sqlite3'}", "--once")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "delivery is off" in err


def test_a_killed_worker_s_delivery_is_finished_by_another_once(sqlite_store, kb, server):
    exam_id, bundle = queue(sqlite_store, kb)
    database = str(sqlite_store.engine.url)
    server.faults({"delay": 2.0})
    first = worker(server.url, database, "--once", "--worker-id", "first",
                   DELIVERY_LEASE_SECONDS=1, DELIVERY_TIMEOUT_SECONDS=10)
    wait_for(lambda: server.state()["posts"] == 1)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert outbox.status_for(sqlite_store, exam_id).state == "in-flight"
    # the EHR still commits what the dead worker sent; then its lease runs out
    wait_for(lambda: server.state()["resources"])
    time.sleep(0.2)
    second = worker(server.url, database, "--once", "--worker-id", "second",
                    DELIVERY_LEASE_SECONDS=30)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    status = outbox.status_for(sqlite_store, exam_id)
    assert (status.state, status.attempts) == ("delivered", 2)
    state = server.state()
    assert state["posts"] == 2
    held = copies(state)
    assert sum(held.values()) == expected_copies(bundle) and set(held.values()) == {1}


def test_parallel_workers_on_postgresql_never_send_a_job_twice(postgres_server, kb, server):
    name = postgres_server.create_database()
    try:
        store = Store(postgres_server.url(name))
        store.upgrade()
        queued = [queue(store, kb)[0] for _ in range(6)]
        server.faults(*[{"delay": 0.3}] * 6)
        workers = [worker(server.url, postgres_server.url(name), "--once", "--batch", "3",
                          "--worker-id", f"w{n}") for n in range(2)]
        # SKIP LOCKED: each claims 3 different jobs (at most 3 each: all 6 are taken only
        # if the two claims were disjoint), and each job is posted once
        for process in workers:
            _, err = process.communicate(timeout=30)
            assert process.returncode == 0, err
        assert outbox.claim(store, "late", 10, 30) == []
        assert [outbox.status_for(store, e).state for e in queued] == ["delivered"] * 6
        assert server.state()["posts"] == 6
        store.dispose()
    finally:
        postgres_server.drop_database(name)


def test_concurrent_claims_on_postgresql_are_disjoint(postgres_server, kb) -> None:
    import threading

    name = postgres_server.create_database()
    try:
        store = Store(postgres_server.url(name))
        store.upgrade()
        for _ in range(8):
            queue(store, kb)
        claimed: list[list] = []
        start = threading.Barrier(4)

        def take() -> None:
            start.wait()
            claimed.append(outbox.claim(store, threading.current_thread().name, 3, 30))

        threads = [threading.Thread(target=take, name=f"t{n}") for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [job.id for jobs in claimed for job in jobs]
        assert len(ids) == len(set(ids)) == 8
        store.dispose()
    finally:
        postgres_server.drop_database(name)


# -- the tablet -------------------------------------------------------------------------

def _sign_on_the_tablet(client, identifier: str = "MRN-1") -> str:
    import re

    response = client.post("/patients", data={"family": "Silva", "given": "Ana",
                                              "birth_date": "1986-03-14",
                                              "identifier": identifier})
    response = client.post(f"/patients/{response.headers['Location'].rsplit('/', 1)[-1]}"
                           "/exams")
    exam_id = response.headers["Location"].split("/")[2]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    version = int(re.search(r'"version": (\d+)', page).group(1))
    saved = client.put(f"/exams/{exam_id}/draft",
                       json={"section": "slr", "answers": {"slr.left.onset-angle": 40}},
                       headers={"If-Match": f'"{version}"'}).get_json()["version"]
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": saved, "password": PASSWORD})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    rendering.render_pending(client.application)  # the renderer beside the web workers
    return exam_id


def test_sign_off_queues_the_record_and_the_page_shows_its_delivery(make_app, server):
    from plugin.adapters import store as storage

    app = make_app({**TABLET, "EHR_FHIR_BASE_URL": server.url})
    client = signed_in(app)
    exam_id = _sign_on_the_tablet(client)
    page = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert 'id="delivery">Waiting to send (attempt 1, next at' in page
    store = storage.from_app(app)
    server.seed(EHR_ANA)
    server.faults({"status": 400, "text": "Observation.code unknown", "code": "code-invalid"})
    assert work(store, server.url)["dead"] == 1
    page = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert 'id="delivery">Could not be sent: HTTP 400' in page
    assert "Observation.code unknown" in page


def test_sign_off_is_delivered_to_the_ehr_s_patient_and_says_so(make_app, server):
    from plugin.adapters import store as storage

    app = make_app({**TABLET, "EHR_FHIR_BASE_URL": server.url})
    client = signed_in(app)
    exam_id = _sign_on_the_tablet(client)
    server.seed(EHR_ANA, {**EHR_ANA, "id": "another-hospital-s",
                          "identifier": [{"system": "https://elsewhere.example/mrn",
                                          "value": "MRN-1"}]})
    assert work(storage.from_app(app), server.url)["delivered"] == 1
    page = client.get(f"/exams/{exam_id}/record").get_data(as_text=True)
    assert 'id="delivery">Sent to the EHR on ' in page
    qr = [r for r in server.state()["resources"] if r["resourceType"] == "QuestionnaireResponse"]
    assert len(qr) == 1 and qr[0]["identifier"]["value"] == exam_id
    # a patient typed on the tablet: found in the EHR by the organisation's MRN and
    # confirmed by birth date, so every resource names the EHR's own Patient
    assert qr[0]["subject"]["reference"] == "Patient/ehr-ana-silva"
    assert all(r["subject"]["reference"] == "Patient/ehr-ana-silva"
               for r in server.state()["resources"] if "subject" in r)
    notes = [r for r in server.state()["resources"] if r["resourceType"] == "DocumentReference"]
    assert len(notes) == 1 and notes[0]["identifier"][0]["value"] == f"{exam_id}/summary"


def test_without_an_ehr_nothing_is_queued(make_app):
    from plugin.adapters import store as storage

    app = make_app(TABLET)
    client = signed_in(app)
    exam_id = _sign_on_the_tablet(client)
    assert outbox.status_for(storage.from_app(app), exam_id) is None
    assert 'id="delivery"' not in client.get(f"/exams/{exam_id}/record").get_data(as_text=True)


def test_a_job_whose_worker_keeps_stopping_is_given_up(sqlite_store, kb) -> None:
    """An expired lease is claimable again, but not for ever: a payload that crashes
    every worker ends dead after max_attempts, with a reason."""
    exam_id, _ = queue(sqlite_store, kb)
    start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    for attempt in range(1, 4):
        claimed = outbox.claim(sqlite_store, f"w{attempt}", 10, 30, max_attempts=3,
                               now=start + dt.timedelta(minutes=attempt))
        assert [j.attempts for j in claimed] == [attempt]  # worker "crashes": no report
    later = start + dt.timedelta(hours=1)
    assert outbox.claim(sqlite_store, "w4", 10, 30, max_attempts=3, now=later) == []
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.state == "dead" and "interrupted" in status.last_error
