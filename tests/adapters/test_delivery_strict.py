"""Delivery to a test EHR as strict as production servers (tests/support/fhir_server.py
``/_strict``): a conditional-transaction entry limit answered as Medplum answers it,
undeclared and chained parameters refused, types refused in transactions, literal patient
references required; each alone and all at once, under injected faults. Every exam must
arrive complete (every resource the EHR's declared capabilities let the plugin create
without a retry ever duplicating it), exactly once, every reference resolvable in the
EHR, every resource valid (tests/conformance), with the EHR's own Patient."""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from plugin.adapters import ehr_servers, outbox
from plugin.adapters.store import Store
from plugin.core import documents, patient as patient_mod
from plugin.decision import impression as impression_mod
from plugin.record import pipeline, signoff
from tests.adapters.test_delivery import CASE, MRN, NOW, QUESTIONNAIRE, FhirServer, copies, \
    fhir_server, free_port, wait_for, worker  # noqa: F401 (fhir_server: a fixture)
from tests.core.test_documents import MINIMAL_PDF
from tests.support.conformance import IndependentValidator, assert_conformant
from tests.support.signin import signed_in

FAST = outbox.Policy(max_attempts=8, backoff_seconds=0)
EHR_RUTH = {"resourceType": "Patient", "id": "ehr-ruth-osei",
            "identifier": [{"system": MRN, "value": "MRN-7"}],
            "name": [{"family": "Osei", "given": ["Ruth"]}], "birthDate": "1974-01-08"}
#: Medplum's conditional-transaction limit.
LIMIT = 8


@pytest.fixture()
def server(fhir_server):
    fhir_server.reset()
    fhir_server.seed(EHR_RUTH)
    return fhir_server


def queue_typed(store: Store, kb, *, with_document: bool = True, mrn: str = "MRN-7",
                birth_date: str = "1974-01-08",
                impression: Any = impression_mod.NONE) -> tuple[str, dict]:
    """A signed exam of a patient typed on the tablet, queued as the tablet queues it:
    the record names the patient by the organisation's MRN, not by a literal reference
    (the local id means nothing to the EHR)."""
    patient = store.add_patient({**CASE["patient"], "birthDate": birth_date,
                                 "identifier": [{"system": MRN, "value": mrn}]})
    record = store.create_exam(patient.id, QUESTIONNAIRE, answers=CASE["answers"],
                               draft={"resourceType": "QuestionnaireResponse"})
    signed = signoff.sign(kb, record.answers, record_id=record.id, patient=patient.resource,
                          signer=signoff.Signer("Dr Ana Costa"), signed_at=NOW, revision=1)
    subject = patient_mod.reference(patient.resource)
    subject.pop("reference")
    exam = replace(signed.exam, context=replace(signed.exam.context, subject=subject))
    docs = [documents.Document("summary", "Clinician summary", MINIMAL_PDF)] \
        if with_document else []
    bundle = pipeline.record(kb, exam, plugin_version="test", recorded=NOW, documents=docs,
                             impression=impression)
    store.sign(record.id, expected_version=record.version, answers=record.answers,
               response=signed.response, provenance=signed.provenance,
               signed_by="Dr Ana Costa", signed_at=NOW, delivery=bundle)
    return record.id, bundle


def work(store: Store, url: str, *, timeout: float = 5, **settings: Any) -> dict:
    return outbox.work(store, worker_id="test", batch=10, lease_seconds=30, base_url=url,
                       profile="auto", timeout=timeout, policy=FAST, identifier_system=MRN,
                       **settings)


def until_delivered(store: Store, url: str, exams: list[str], *, rounds: int = 12,
                    **settings: Any) -> None:
    """Workers run until every exam is delivered (a timed-out attempt's late commit is
    waited for); fails if one ends anything but delivered."""
    for _ in range(rounds):
        work(store, url, timeout=0.4, **settings)
        states = [outbox.status_for(store, e).state for e in exams]
        assert "dead" not in states and "held" not in states, \
            [outbox.status_for(store, e).last_error for e in exams]
        if set(states) == {"delivered"}:
            return
        time.sleep(0.5)  # a delayed answer's commit lands
    raise AssertionError(f"not delivered: {states}")


def without_tag(server: FhirServer) -> dict:
    """The server's CapabilityStatement without ``_tag``: a Provenance is then found by
    ``entity`` (the response's EHR id)."""
    statement = server._call("/metadata")
    statement["rest"][0].pop("searchParam")
    server._call("/_capability", statement)
    return statement


def assert_arrived_complete_once(server: FhirServer, bundles: list[dict],
                                 validator: IndependentValidator) -> None:
    """Every entry of every Bundle is in the EHR exactly once, names the EHR's own
    Patient, refers only to what the EHR holds, and is valid FHIR R4."""
    state = server.state()
    held = copies(state)
    assert set(held.values()) == {1}, [k for k, n in held.items() if n > 1]
    kinds = Counter(kind for kind, _ in held)
    expected: Counter = Counter()
    for bundle in bundles:
        expected.update(e["resource"]["resourceType"] for e in bundle["entry"])
    expected["Device"] = 1  # one plugin version: one Device for every exam
    expected["Patient"] = 1  # the EHR's own, seeded
    assert kinds == expected
    ids = {f"{r['resourceType']}/{r['id']}" for r in state["resources"]}
    for resource in state["resources"]:
        text = json.dumps(resource)
        assert "urn:uuid:" not in text
        for reference in re.findall(r'"reference": "([^"]+)"', text):
            assert reference in ids, reference
        for field in ("subject", "patient"):
            if field in resource:
                assert resource[field]["reference"] == "Patient/ehr-ruth-osei"
        assert_conformant(validator, resource)


STRICTNESS = {
    "entry limit": {"max_entries": LIMIT},
    "declared parameters only": {"declared_only": True},
    "no Provenance or Device in transactions": {"no_transaction_types": ["Provenance",
                                                                        "Device"]},
    "literal references": {"literal_references": True},
}
ALL = {k: v for switches in STRICTNESS.values() for k, v in switches.items()}


@pytest.mark.parametrize("switches", [pytest.param(v, id=k) for k, v in STRICTNESS.items()]
                         + [pytest.param(ALL, id="all at once")])
def test_auto_delivers_every_exam_complete_once_to_a_strict_ehr(sqlite_store, kb, server,
                                                               validator, switches):
    server.strict(**switches)
    if switches is ALL:
        without_tag(server)  # and the Provenance is found by its entity
    queued = [queue_typed(sqlite_store, kb), queue_typed(sqlite_store, kb,
                                                          with_document=False)]
    # 5xx, a dropped connection, and a commit whose answer comes after the worker gave up
    server.faults({"status": 503}, {}, {"drop": True}, {"delay": 0.8})
    until_delivered(sqlite_store, server.url, [e for e, _ in queued])
    assert_arrived_complete_once(server, [b for _, b in queued], validator)
    for exam_id, bundle in queued:
        status = outbox.status_for(sqlite_store, exam_id)
        assert len(status.sent) == len(bundle["entry"]) and status.missing() == {}
        assert status.unsent == ()


def test_the_clinicians_decision_arrives_once_beside_the_suggestions(sqlite_store, kb, server,
                                                                    validator) -> None:
    """The working diagnosis and the referrals made reach the strictest EHR exactly once
    through faults and retries, each resolvable there, apart from the suggestions."""
    server.strict(**ALL)
    without_tag(server)
    decided = impression_mod.load(kb.decision, {
        "diagnosis": {"condition": "lumbar-radiculopathy", "status": "confirmed"},
        "referrals": {"physiotherapy": {"order": True, "priority": "routine"},
                      "spine-surgeon": {"order": True, "priority": "urgent",
                                        "reason": "Second opinion asked for."}},
        "note": "Discussed with the patient."})
    queued = [queue_typed(sqlite_store, kb, impression=decided)]
    server.faults({"status": 503}, {"drop": True}, {"delay": 0.8})
    until_delivered(sqlite_store, server.url, [e for e, _ in queued])
    assert_arrived_complete_once(server, [b for _, b in queued], validator)
    held = server.state()["resources"]
    orders = [r for r in held if r["resourceType"] == "ServiceRequest" and r["intent"] == "order"]
    assert sorted(r["code"]["text"] for r in orders) == ["Physiotherapy", "Spine surgeon"]
    condition = next(r for r in held if r["resourceType"] == "Condition"
                     and r["verificationStatus"]["coding"][0]["code"] == "confirmed")
    assert condition["note"] == [{"text": "Discussed with the patient."}]
    assert all(ref["reference"] == f"Condition/{condition['id']}"
               for r in orders for ref in r["reasonReference"] if ref["type"] == "Condition")
    (impression,) = [r for r in held if r["resourceType"] == "ClinicalImpression"]
    assert impression["summary"] == "Discussed with the patient."
    assert impression["finding"] == [{"itemReference": {
        "reference": f"Condition/{condition['id']}", "type": "Condition"}}]


NOTE_ONLY = {"referrals": {"physiotherapy": {"order": True, "priority": "routine"}},
             "note": "No working diagnosis yet; review after the MRI."}


def test_a_note_without_a_diagnosis_arrives_as_a_clinical_impression(sqlite_store, kb, server,
                                                                     validator) -> None:
    server.strict(**ALL)
    without_tag(server)
    decided = impression_mod.load(kb.decision, NOTE_ONLY)
    queued = [queue_typed(sqlite_store, kb, impression=decided)]
    until_delivered(sqlite_store, server.url, [e for e, _ in queued])
    assert_arrived_complete_once(server, [b for _, b in queued], validator)
    held = server.state()["resources"]
    assert not any(r["resourceType"] == "Condition"
                   and r["verificationStatus"]["coding"][0]["code"] != "differential"
                   for r in held)
    (impression,) = [r for r in held if r["resourceType"] == "ClinicalImpression"]
    assert (impression["status"], impression["summary"]) == \
        ("completed", "No working diagnosis yet; review after the MRI.")
    assert impression["subject"]["reference"] == "Patient/ehr-ruth-osei"
    assert "finding" not in impression


def test_an_ehr_without_clinical_impression_gets_the_rest_and_the_gap_is_named(
        sqlite_store, kb, server) -> None:
    """An EHR whose CapabilityStatement creates no ClinicalImpression: the record is
    delivered without it (never a refused transaction), and the delivery says what
    was left out and why; the note is still in the summary PDF."""
    server.strict(**ALL)
    statement = without_tag(server)
    statement["rest"][0]["resource"] = [r for r in statement["rest"][0]["resource"]
                                        if r["type"] != "ClinicalImpression"]
    server._call("/_capability", statement)
    decided = impression_mod.load(kb.decision, NOTE_ONLY)
    exam_id, bundle = queue_typed(sqlite_store, kb, impression=decided)
    until_delivered(sqlite_store, server.url, [exam_id])
    held = server.state()["resources"]
    assert not any(r["resourceType"] == "ClinicalImpression" for r in held)
    assert any(r["resourceType"] == "DocumentReference" for r in held)
    assert "urn:uuid:" not in json.dumps(held)  # nothing points at what was left out
    (provenance,) = [r for r in held if r["resourceType"] == "Provenance"]
    assert "ClinicalImpression" not in {x.get("type") for x in provenance["target"]}
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.missing() == {"ClinicalImpression": 1}
    assert [reason for _, reason in status.unsent] == \
        ["the EHR does not create ClinicalImpression"]
    assert len(status.sent) == len(bundle["entry"]) - 1


def test_the_entry_limit_is_learned_once_and_kept_per_ehr(sqlite_store, kb, server) -> None:
    server.strict(max_entries=LIMIT)
    first, _ = queue_typed(sqlite_store, kb)
    assert work(sqlite_store, server.url)["delivered"] == 1
    learned = ehr_servers.recall(sqlite_store, server.url + "/")
    assert learned.way == "transaction" and 0 < learned.limit <= LIMIT
    bodies = server.state()["bodies"]
    refused = [b for b in bodies if len(b["entry"]) > LIMIT]
    assert refused and all(len(b["entry"]) <= LIMIT for b in bodies[len(refused):])
    # the next record goes in steps at once: no request refused any more
    queue_typed(sqlite_store, kb)
    before = len(bodies)
    assert work(sqlite_store, server.url)["delivered"] == 1
    assert all(len(b["entry"]) <= learned.limit for b in server.state()["bodies"][before:])


def test_a_configured_entry_limit_is_never_exceeded(sqlite_store, kb, server) -> None:
    server.strict(max_entries=LIMIT)
    exam_id, bundle = queue_typed(sqlite_store, kb)
    assert work(sqlite_store, server.url, max_entries=LIMIT)["delivered"] == 1
    bodies = server.state()["bodies"]
    assert all(len(b["entry"]) <= LIMIT for b in bodies)
    assert len(bodies) == -(-len(bundle["entry"]) // LIMIT)  # ceil: no wasted request


def test_a_refusal_of_the_content_is_final_and_names_the_ehr_s_reason(sqlite_store, kb,
                                                                      server) -> None:
    exam_id, _ = queue_typed(sqlite_store, kb)
    server.faults({"status": 422, "code": "code-invalid",
                   "text": "Observation.code: unknown code system"})
    assert work(sqlite_store, server.url)["dead"] == 1
    status = outbox.status_for(sqlite_store, exam_id)
    assert status.last_error.startswith("HTTP 422") and "unknown code system" in \
        status.last_error
    assert server.state()["posts"] == 1  # no other way tried: it would be refused too


def test_an_unknown_refusal_is_taken_as_one_of_shape_once_then_final(sqlite_store, kb,
                                                                     server) -> None:
    exam_id, _ = queue_typed(sqlite_store, kb)
    server.faults({"status": 400, "code": "security", "text": "no"},
                  {"status": 400, "code": "security", "text": "still no"})
    assert work(sqlite_store, server.url)["dead"] == 1
    status = outbox.status_for(sqlite_store, exam_id)
    assert "still no" in status.last_error and "(after: transaction: HTTP 400" in \
        status.last_error
    assert server.state()["posts"] == 2  # the transaction, then the first single create


def test_a_killed_worker_and_an_ehr_that_was_down_still_deliver_once(sqlite_store, kb,
                                                                     server, validator):
    server.strict(**ALL)
    exam_id, bundle = queue_typed(sqlite_store, kb)
    database = str(sqlite_store.engine.url)
    # the EHR is down: the exam waits
    down = work(sqlite_store, f"http://127.0.0.1:{free_port()}")
    assert down["retry"] == 1
    assert "cannot reach the EHR" in outbox.status_for(sqlite_store, exam_id).last_error
    with sqlite_store.engine.begin() as conn:  # due again now
        conn.execute(outbox.outbox.update().values(next_attempt_at=NOW))
    # a worker killed while the EHR commits its first step
    server.faults({"delay": 2.0})
    first = worker(server.url, database, "--once", "--worker-id", "first",
                   DELIVERY_LEASE_SECONDS=1, DELIVERY_TIMEOUT_SECONDS=10,
                   PATIENT_IDENTIFIER_SYSTEM=MRN, EHR_TRANSACTION_MAX_ENTRIES=LIMIT)
    wait_for(lambda: server.state()["posts"] >= 1)
    first.kill()
    first.communicate(timeout=10)
    time.sleep(2.2)  # the step committed; the lease ran out
    second = worker(server.url, database, "--once", "--worker-id", "second",
                    PATIENT_IDENTIFIER_SYSTEM=MRN, EHR_TRANSACTION_MAX_ENTRIES=LIMIT)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    until_delivered(sqlite_store, server.url, [exam_id])
    assert_arrived_complete_once(server, [bundle], validator)


# -- recover and see: the record page, Send again, the EHR's patient, the CLI ----------

def _tablet(make_app, server: FhirServer, identifier: str = "MRN-1") -> tuple[Any, Any, str]:
    from plugin.adapters import store as storage
    from tests.adapters.test_delivery import TABLET, _sign_on_the_tablet

    app = make_app({**TABLET, "EHR_FHIR_BASE_URL": server.url})
    client = signed_in(app)
    return client, storage.from_app(app), _sign_on_the_tablet(client, identifier)


def _page(client, exam_id: str) -> str:
    return client.get(f"/exams/{exam_id}/record").get_data(as_text=True)


def test_a_failed_delivery_shows_what_reached_the_ehr_and_is_sent_again_without_duplicates(
        make_app, server, validator) -> None:
    from tests.adapters.test_delivery import EHR_ANA

    client, store, exam_id = _tablet(make_app, server)
    server.seed(EHR_ANA)
    server.strict(max_entries=2)  # the tablet's short exam: 5 entries, 3 steps
    # the third step is refused for its content: final, but two steps are in the EHR
    server.faults({}, {}, {"status": 422, "code": "value", "text": "Observation.value: "
                                                                  "out of range"})
    assert work(store, server.url, max_entries=2)["dead"] == 1
    page = _page(client, exam_id)
    assert 'id="delivery">Could not be sent: step 3 of 3 (1 entries): HTTP 422' in page
    assert "Observation.value: out of range" in page
    status = outbox.status_for(store, exam_id)
    assert len(status.sent) == 4 and sum(status.missing().values()) == 1
    ids = [r["id"] for r in server.state()["resources"]
           if r["resourceType"] == "QuestionnaireResponse"]
    assert 'id="delivery-reached"' in page and ids[0] in page  # the EHR's own ids
    assert re.search(r'<th scope="row">Provenance</th><td>1</td><td>not sent yet', page)
    assert 'id="deliver-again"' in page
    # Send again (a plain CSRF-protected form POST): only what is missing goes
    before = len(server.state()["bodies"])
    answer = client.post(f"/exams/{exam_id}/delivery/again")
    assert answer.status_code == 303
    assert outbox.status_for(store, exam_id).state == "pending"
    assert work(store, server.url, max_entries=2)["delivered"] == 1
    sent_again = server.state()["bodies"][before:]
    resent = {e["fullUrl"] for b in sent_again if b.get("resourceType") == "Bundle"
              for e in b["entry"]}
    assert not resent & set(status.sent)
    page = _page(client, exam_id)
    assert 'id="delivery">Sent to the EHR on ' in page and 'id="deliver-again"' not in page
    held = copies(server.state())
    assert set(held.values()) == {1}
    for resource in server.state()["resources"]:
        assert_conformant(validator, resource)
    # nothing left to send again
    assert client.post(f"/exams/{exam_id}/delivery/again").status_code == 409


@pytest.mark.parametrize(("seeded", "words"), [
    pytest.param([], "has no patient with this identifier", id="none"),
    pytest.param([{"id": "ana-1"}, {"id": "ana-2"}], "2 patients with this identifier",
                 id="several"),
    pytest.param([{"id": "ana-1", "birthDate": "1968-03-14"}], "another birth date",
                 id="another birth date"),
])
def test_an_unconfirmed_ehr_patient_holds_the_delivery_until_a_person_chooses(
        make_app, server, seeded, words) -> None:
    from tests.adapters.test_delivery import EHR_ANA

    client, store, exam_id = _tablet(make_app, server)
    server.seed(*({**EHR_ANA, **s} for s in seeded))
    server.strict(literal_references=True)
    counts = work(store, server.url)
    assert counts["held"] == 1 and server.state()["posts"] == 0
    page = _page(client, exam_id)
    assert "Waiting for the EHR’s patient to be confirmed" in page and words in page
    for candidate in seeded:
        assert f'value="{candidate["id"]}"' in page  # never chosen for the user
    assert work(store, server.url)["claimed"] == 0  # waits for a person, not retried
    # a person names the EHR's patient: chosen from the list, or typed in; an id the
    # EHR does not know waits for them again
    assert client.post(f"/exams/{exam_id}/delivery/patient",
                       data={"ehr_patient": "not a valid id!"}).status_code == 409
    assert client.post(f"/exams/{exam_id}/delivery/patient",
                       data={"ehr_patient_id": "ana-right"}).status_code == 303
    assert work(store, server.url)["held"] == 1
    assert "The EHR has no Patient/ana-right" in _page(client, exam_id)
    server.seed({**EHR_ANA, "id": "ana-right"})
    answer = client.post(f"/exams/{exam_id}/delivery/patient",
                         data={"ehr_patient_id": "ana-right"})
    assert answer.status_code == 303
    assert work(store, server.url)["delivered"] == 1
    subjects = {r["subject"]["reference"] for r in server.state()["resources"]
                if "subject" in r}
    assert subjects == {"Patient/ana-right"}


def test_without_the_identifier_system_the_patient_is_asked_for_never_guessed(
        make_app, server) -> None:
    from tests.adapters.test_delivery import EHR_ANA

    client, store, exam_id = _tablet(make_app, server)
    server.seed(EHR_ANA)  # same name and birth date: still not taken on that alone
    assert outbox.work(store, worker_id="t", batch=5, lease_seconds=30,
                       base_url=server.url, profile="auto", timeout=5,
                       policy=FAST)["held"] == 1
    assert "PATIENT_IDENTIFIER_SYSTEM" in outbox.status_for(store, exam_id).last_error


def test_the_cli_lists_and_requeues_deliveries(make_app, server, tmp_path) -> None:
    import os
    import subprocess
    import sys

    from tests.adapters.test_delivery import ROOT

    client, store, exam_id = _tablet(make_app, server)
    server.faults({"status": 422, "code": "invalid", "text": "no"})
    from tests.adapters.test_delivery import EHR_ANA
    server.seed(EHR_ANA)
    assert work(store, server.url)["dead"] == 1
    env = {**os.environ, "PLUGIN_DATABASE_URL": str(store.engine.url),
           "PLUGIN_SECRET_KEY": "test"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "plugin", "deliver", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    listed = cli("--list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["exam"], r["state"], r["in_ehr"]) for r in rows] == [(exam_id, "dead", 0)]
    assert "HTTP 422" in rows[0]["last_error"]
    assert exam_id in cli("--list").stdout
    again = cli("--requeue", exam_id)
    assert again.returncode == 0 and "queued again" in again.stderr
    assert outbox.status_for(store, exam_id).state == "pending"
    nothing = cli("--requeue", exam_id)
    assert nothing.returncode == 2 and "nothing to send again" in nothing.stderr
    assert cli("--requeue", "not-an-exam").returncode == 2
    assert work(store, server.url)["delivered"] == 1


def test_held_chosen_failed_and_requeued_deliveries_on_both_backends(store, kb) -> None:
    from plugin.adapters.ehr_http import Result

    exam_id, bundle = queue_typed(store, kb)
    [job] = outbox.claim(store, "w", 5, 30)
    candidate = {"id": "a", "name": "Ruth Osei", "birthDate": "1974-01-08"}
    assert outbox.held(store, job, Result(delivered=False, hold="confirm the patient",
                                          candidates=(candidate,)))
    status = outbox.status_for(store, exam_id)
    assert (status.state, status.attempts, status.last_error) == \
        ("held", 0, "confirm the patient")
    assert status.candidates == (candidate,)
    assert outbox.claim(store, "w", 5, 30) == []  # waits for a person
    assert outbox.choose_patient(store, exam_id, "Patient/a").state == "pending"
    [job] = outbox.claim(store, "w", 5, 30)
    assert job.ehr_patient == "Patient/a"
    qr = bundle["entry"][0]["fullUrl"]
    assert outbox.failed(store, job, "HTTP 422: no", retryable=False, result=Result(
        delivered=False, sent={qr: "QuestionnaireResponse/1"},
        unsent=(("Provenance", "not findable"),))) == "dead"
    status = outbox.status_for(store, exam_id)
    assert status.reached() == {"QuestionnaireResponse": ["QuestionnaireResponse/1"]}
    assert status.missing()["Observation"] > 0 and "QuestionnaireResponse" not in \
        status.missing()
    assert outbox.choose_patient(store, exam_id, "Patient/b") is None  # not held
    again = outbox.requeue(store, exam_id)
    assert (again.state, again.attempts, dict(again.sent)) == \
        ("pending", 0, {qr: "QuestionnaireResponse/1"})
    assert outbox.requeue(store, exam_id) is None  # nothing failed any more
    [job] = outbox.claim(store, "w", 5, 30)
    assert job.sent == {qr: "QuestionnaireResponse/1"}  # not sent again
    assert [s.exam_id for s in outbox.listing(store)] == [exam_id]


def test_a_provenance_the_ehr_cannot_find_again_is_not_sent_and_the_page_says_so(
        make_app, server) -> None:
    from tests.adapters.test_delivery import EHR_ANA

    client, store, exam_id = _tablet(make_app, server)
    server.seed(EHR_ANA)
    server.strict(declared_only=True)
    statement = without_tag(server)
    provenance = next(r for r in statement["rest"][0]["resource"]
                      if r["type"] == "Provenance")
    provenance["searchParam"] = [{"name": "patient", "type": "reference"}]
    server._call("/_capability", statement)
    assert work(store, server.url)["delivered"] == 1
    assert not any(r["resourceType"] == "Provenance" for r in server.state()["resources"])
    page = _page(client, exam_id)
    assert 'id="delivery">Sent to the EHR on ' in page
    assert re.search(r'<th scope="row">Provenance</th><td>1</td><td>the EHR declares no '
                     r'search \(_tag, entity or target\) to find a Provenance again', page)
    # sending again changes nothing: what could not be matched is still not sent
    assert work(store, server.url)["claimed"] == 0
