"""Signing is an attestation (21 CFR Part 11), end to end through the tablet pages: the
signed-in clinician re-enters the password, and the stored Provenance carries a JWS
signature over the response exactly as stored, which the instance's public key (and
``python -m plugin verify``) accepts and which no changed byte survives. The signer is a
Practitioner this server serves."""
from __future__ import annotations

import copy
import datetime as dt
import re

import pytest

from plugin.adapters import outbox, signing_key, store as store_mod, users
from plugin.core import signature
from tests.support.cli import run, write
from tests.support.conformance import assert_conformant
from tests.support import rendering
from tests.support.signin import PASSWORD, signed_in, user

NPI = "http://hl7.org/fhir/sid/us-npi"


@pytest.fixture()
def app(make_app, database_url):
    """On both backends: the signed bytes must come back from each database unchanged."""
    return make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _signed_exam(client) -> tuple[str, int]:
    """A patient and an exam with a straight-leg raise, signed through the pages."""
    patient = client.post("/patients", data={"family": "Silva", "given": "Ana",
                                             "birth_date": "1986-03-14", "identifier": "MRN-1"})
    exam = client.post(f"/patients/{patient.headers['Location'].rsplit('/', 1)[-1]}/exams")
    exam_id = exam.headers["Location"].split("/")[2]
    page = client.get(exam.headers["Location"]).get_data(as_text=True)
    version = int(re.search(r'"version": (\d+)', page).group(1))
    saved = _save(client, exam_id, version, {"slr.left.onset-angle": 40,
                                             "slr.left.response": "leg-pain-below-knee"})
    version = saved.get_json()["version"]
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                         "password": PASSWORD})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    rendering.render_pending(client.application)  # the renderer beside the web workers
    return exam_id, version + 1


def _save(client, exam_id, version, answers):
    return client.put(f"/exams/{exam_id}/draft", json={"section": "slr", "answers": answers},
                      headers={"If-Match": f'"{version}"'})


def _jwks(app):
    return signing_key.public_jwks(app.extensions[signing_key.EXTENSION_KEY])


def test_a_signature_and_an_amendment_verify_with_the_instance_key(app, client,
                                                                   validator) -> None:
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    exam_id, version = _signed_exam(client)
    clinician = user(app, "clinician")
    assert client.post(f"/exams/{exam_id}/amend", data={"version": version,
                                                        "reason": "Angle misread"}
                       ).status_code == 303
    version = _save(client, exam_id, version + 1, {"slr.left.onset-angle": 45,
                                                   "slr.left.response": "leg-pain-below-knee"}
                    ).get_json()["version"]
    assert client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                       "password": PASSWORD}
                       ).status_code == 303
    revisions = store_mod.from_app(app).revisions(exam_id)
    assert [r.number for r in revisions] == [1, 2]
    for revision in revisions:
        response, provenance = dict(revision.response), dict(revision.provenance)
        practitioner = f"Practitioner/{clinician.id}"
        assert response["author"]["reference"] == practitioner
        assert [a["who"]["reference"] for a in provenance["agent"]] == [practitioner]
        [element] = provenance["signature"]
        assert element["type"] == [{"system": "urn:iso-astm:E1762-95:2013",
                                    "code": "1.2.840.10065.1.12.1.1",
                                    "display": "Author's Signature"}]
        assert element["who"] == {"reference": practitioner, "display": "Dr Ann Lee"}
        assert (element["sigFormat"], element["targetFormat"]) == \
            ("application/jose", "application/fhir+json")
        claims = signature.verify(response, element, _jwks(app))
        assert (claims.username, claims.display, claims.practitioner) == \
            ("test-clinician", "Dr Ann Lee", practitioner)
        # the password re-entry just before this signature, the signing time its record's
        assert before <= claims.authenticated_at <= claims.signed_at == \
            revision.signed_at.replace(microsecond=0)
        assert_conformant(validator, provenance)
        assert_conformant(validator, response)
        # any changed byte of the signed content is detected
        changed = copy.deepcopy(response)
        changed["status"] = "entered-in-error"
        with pytest.raises(signature.SignatureError, match="changed since it was signed"):
            signature.verify(changed, element, _jwks(app))
    assert revisions[1].provenance["reason"] == [{"text": "Angle misread"}]
    assert revisions[1].response["status"] == "amended"
    # each revision's signature is its own: the first does not verify the amended response
    with pytest.raises(signature.SignatureError):
        signature.verify(dict(revisions[1].response),
                         revisions[0].provenance["signature"][0], _jwks(app))


def test_verify_accepts_the_stored_record_and_exits_1_after_a_change(app, client,
                                                                     tmp_path) -> None:
    """The stored record exported as the README says (a Bundle of the response and its
    signed Provenance) checked by ``python -m plugin verify`` with this instance's key."""
    exam_id, _ = _signed_exam(client)
    [revision] = store_mod.from_app(app).revisions(exam_id)
    record = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": dict(revision.response)},
                        {"resource": dict(revision.provenance)}]}
    key = app.config["SIGNING_KEY"]
    result = run("verify", write(tmp_path, "record.json", record),
                 env={"PLUGIN_SIGNING_KEY": key})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("valid: signed by Dr Ann Lee (test-clinician, "
                                    f"Practitioner/{user(app, 'clinician').id}) at ")
    changed = copy.deepcopy(record)
    answer = _first_answer(changed["entry"][0]["resource"]["item"])
    answer.update({k: (v + 1 if isinstance(v, int) else v) for k, v in answer.items()})
    result = run("verify", write(tmp_path, "changed.json", changed),
                 env={"PLUGIN_SIGNING_KEY": key})
    assert (result.returncode, result.stdout) == (1, "")
    assert "the QuestionnaireResponse has changed since it was signed" in result.stderr


def _first_answer(items):
    """The first numeric answer in an item tree (the straight-leg-raise angle)."""
    for item in items:
        for answer in item.get("answer", []):
            if "valueInteger" in answer or "valueDecimal" in answer:
                return answer
            found = _first_answer(answer.get("item", []))
            if found:
                return found
        found = _first_answer(item.get("item", []))
        if found:
            return found
    return None


def test_a_clinician_is_served_as_a_practitioner_others_are_not(app, client,
                                                                validator) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    store = store_mod.from_app(app)
    lee = users.add(store, "blee", display_name="Dr Bo Lee", role="clinician",
                    password=PASSWORD, identifier=f"{NPI}|1234567893", now=now)
    admin_signer = users.add(store, "croot", display_name="Dr Cy Root", role="admin",
                             also_clinician=True, password=PASSWORD, now=now)
    assistant = user(app, "assistant")
    response = client.get(f"/fhir/Practitioner/{lee.id}")
    assert response.status_code == 200
    assert response.get_json() == {
        "resourceType": "Practitioner", "id": lee.id, "active": True,
        "name": [{"text": "Dr Bo Lee"}],
        "identifier": [{"system": NPI, "value": "1234567893"}]}
    assert_conformant(validator, response.get_json())
    assert client.get(f"/fhir/Practitioner/{admin_signer.id}").status_code == 200
    for missing in (assistant.id, user(app, "admin").id, "not-a-user"):
        refused = client.get(f"/fhir/Practitioner/{missing}")
        assert refused.status_code == 404
        assert refused.get_json()["resourceType"] == "OperationOutcome"
    anonymous = app.test_client().get(f"/fhir/Practitioner/{lee.id}")
    assert anonymous.status_code == 401


def test_a_delivered_copy_verifies_once_the_documented_rewrites_are_undone(
        make_app, tmp_path) -> None:
    """Signed with delivery on: the EHR's copy of the response names the patient by
    identifier and the signer by identifier and name (not our local ids); with the
    stored signature and ``--subject``, verify accepts it, and any other change fails."""
    app = make_app({"WTF_CSRF_ENABLED": False,
                    "EHR_FHIR_BASE_URL": "https://ehr.example.org/fhir"})
    client = signed_in(app)
    exam_id, _ = _signed_exam(client)
    store = store_mod.from_app(app)
    [revision] = store.revisions(exam_id)
    [job] = outbox.claim(store, "test", 1, 30)
    [delivered] = [e["resource"] for e in job.payload["entry"]
                   if e["resource"]["resourceType"] == "QuestionnaireResponse"]
    assert "reference" not in delivered["author"] and "reference" not in delivered["subject"]
    # as the EHR answers it: its own id and meta (not signed)
    delivered = dict(delivered, id="ehr-qr-3", meta={"versionId": "1"})
    ours = revision.response["subject"]["reference"]
    path = write(tmp_path, "delivered.json", [delivered, dict(revision.provenance)])
    key = {"PLUGIN_SIGNING_KEY": app.config["SIGNING_KEY"]}
    assert run("verify", path, env=key).returncode == 1
    result = run("verify", path, "--subject", ours, env=key)
    assert result.returncode == 0, result.stderr
    assert run("verify", path, "--subject", "Patient/someone-else", env=key).returncode == 1
    changed = copy.deepcopy(delivered)
    changed["author"]["display"] = "Dr Someone Else"
    path = write(tmp_path, "changed.json", [changed, dict(revision.provenance)])
    assert run("verify", path, "--subject", ours, env=key).returncode == 1


def test_verify_exam_checks_the_record_as_the_database_holds_it(app, client,
                                                               database_url) -> None:
    """``verify --exam`` reads every signed revision from the database itself (no export),
    and a changed byte in a stored response is reported for that revision, exit 1."""
    from sqlalchemy import select, update

    from plugin.adapters.tables import revisions

    exam_id, version = _signed_exam(client)
    client.post(f"/exams/{exam_id}/amend", data={"version": version, "reason": "typo"})
    amended = store_mod.from_app(app).exam(exam_id).version
    _save(client, exam_id, amended, {"slr.left.onset-angle": 45})
    client.post(f"/exams/{exam_id}/sign", data={"version": amended + 1, "password": PASSWORD})
    assert len(store_mod.from_app(app).revisions(exam_id)) == 2
    env = {"PLUGIN_SIGNING_KEY": app.config["SIGNING_KEY"], "PLUGIN_DATABASE_URL": database_url}

    result = run("verify", "--exam", exam_id, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["revision 1", "revision 2"]
    assert all("valid: signed by Dr Ann Lee (test-clinician" in line for line in lines)

    engine = store_mod.from_app(app).engine
    with engine.begin() as conn:
        row = conn.execute(select(revisions.c.exam_id, revisions.c.response)
                           .where(revisions.c.number == 1)).one()
        response = copy.deepcopy(row.response)
        answer = _first_answer(response["item"])
        answer.update({k: (v + 1 if isinstance(v, int) else v) for k, v in answer.items()})
        conn.execute(update(revisions).where(revisions.c.exam_id == row.exam_id,
                                             revisions.c.number == 1)
                     .values(response=response))
    result = run("verify", "--exam", exam_id, env=env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    first, second = result.stdout.splitlines()
    assert first.startswith("revision 1: CHANGED: the QuestionnaireResponse has changed")
    assert second.startswith("revision 2: valid: ")
    assert run("verify", "--exam", exam_id, "--revision", "2", env=env).returncode == 0

    unknown = run("verify", "--exam", "no-such-exam", env=env)
    assert unknown.returncode == 2 and "no exam" in unknown.stderr, unknown.stderr


def test_server_timing_names_the_password_check_only_when_asked(make_app) -> None:
    """SERVER_TIMING on: a signature's response says how long the Argon2id check took
    (what bench_signed subtracts); off (the default): no such header."""
    for setting, expected in ((True, True), (False, False)):
        client = signed_in(make_app({"WTF_CSRF_ENABLED": False, "SERVER_TIMING": setting}))
        patient = client.post("/patients", data={"family": "Silva", "given": "Ana",
                                                 "birth_date": "1986-03-14",
                                                 "identifier": f"MRN-{setting}",
                                                 "confirm": "different-person"})
        exam = client.post(f"/patients/{patient.headers['Location'].rsplit('/', 1)[-1]}"
                           "/exams")
        exam_id = exam.headers["Location"].split("/")[2]
        page = client.get(exam.headers["Location"]).get_data(as_text=True)
        version = int(re.search(r'"version": (\d+)', page).group(1))
        version = _save(client, exam_id, version, {"slr.left.onset-angle": 40}
                        ).get_json()["version"]
        signed = client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                             "password": PASSWORD})
        assert signed.status_code == 303
        timing = signed.headers.get("Server-Timing")
        if expected:
            match = re.fullmatch(r"password;dur=(\d+\.\d)", timing or "")
            assert match and float(match.group(1)) > 0
        else:
            assert timing is None
