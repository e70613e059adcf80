"""``python -m plugin verify FILE`` as an auditor runs it: the instance's key, a stored
record, a delivered copy with its references put back, and every change caught."""
from __future__ import annotations

import base64
import copy
import datetime as dt

import pytest
from joserfc.jwk import ECKey

from plugin.record import signoff
from tests.support.cli import run, write

WHEN = dt.datetime(2026, 12, 6, 9, 14, 9, tzinfo=dt.timezone.utc)
AUTHENTICATED = WHEN - dt.timedelta(seconds=4)
KEY = ECKey.generate_key("P-256", private=True, auto_kid=True)
ENV = {"PLUGIN_SIGNING_KEY": KEY.as_pem(private=True).decode()}
VALID = ("valid: signed by Dr Ann Lee (alee, Practitioner/u-1) at 2026-12-06T09:14:09Z, "
         f"password re-entered at 2026-12-06T09:14:05Z; key {KEY.thumbprint()}\n")


@pytest.fixture(scope="module")
def record(kb):
    """A signed record as the service keeps it: a Bundle of the response and Provenance."""
    answers = {"patient.age-years": 40}
    signer = signoff.Signer("Dr Ann Lee", "Practitioner/u-1",
                            attestation=signoff.Attestation("alee", AUTHENTICATED, KEY))
    signed = signoff.sign(kb, answers, record_id="exam-1",
                          patient={"resourceType": "Patient", "id": "p-1",
                                   "birthDate": "1986-01-01"},
                          signer=signer, signed_at=WHEN, revision=1)
    response = dict(signed.response, id="exam-1")  # the stored id is not signed
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": response}, {"resource": signed.provenance}]}


def test_an_unchanged_record_is_valid_and_names_who_signed_when(tmp_path, record) -> None:
    result = run("verify", write(tmp_path, "record.json", record), env=ENV)
    assert (result.returncode, result.stdout, result.stderr) == (0, VALID, "")


def test_a_changed_answer_exits_1(tmp_path, record) -> None:
    changed = copy.deepcopy(record)
    changed["entry"][0]["resource"]["status"] = "amended"
    result = run("verify", write(tmp_path, "record.json", changed), env=ENV)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.endswith("record.json: the QuestionnaireResponse has changed since "
                                  "it was signed\n")


def test_a_changed_byte_of_the_jws_exits_1(tmp_path, record) -> None:
    changed = copy.deepcopy(record)
    element = changed["entry"][1]["resource"]["signature"][0]
    token = base64.b64decode(element["data"]).decode()
    token = token[:-5] + ("x" if token[-5] != "x" else "y") + token[-4:]
    element["data"] = base64.b64encode(token.encode()).decode()
    result = run("verify", write(tmp_path, "record.json", changed), env=ENV)
    assert result.returncode == 1 and "the JWS has been altered" in result.stderr


def test_a_delivered_copy_verifies_once_its_references_are_put_back(tmp_path, record) -> None:
    """What an EHR answers to QuestionnaireResponse?_id=..&_revinclude=Provenance:target:
    its own ids, meta and narrative (not signed), and the subject rewritten to its own
    Patient (signed: it must be undone)."""
    response = copy.deepcopy(record["entry"][0]["resource"])
    response.update(id="ehr-qr-3", meta={"versionId": "1", "lastUpdated": "2026-12-06T09:15:00Z"},
                    text={"status": "generated",
                          "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">exam</div>"})
    response["subject"]["reference"] = "Patient/ehr-981"
    provenance = dict(record["entry"][1]["resource"], id="ehr-prov-4",
                      target=[{"reference": "QuestionnaireResponse/ehr-qr-3"}])
    delivered = {"resourceType": "Bundle", "type": "searchset",
                 "entry": [{"resource": response}, {"resource": provenance}]}
    path = write(tmp_path, "delivered.json", delivered)
    assert run("verify", path, env=ENV).returncode == 1
    result = run("verify", path, "--reference", "Patient/ehr-981=Patient/p-1", env=ENV)
    assert (result.returncode, result.stdout) == (0, VALID)
    wrong = run("verify", path, "--reference", "Patient/ehr-981=Patient/p-2", env=ENV)
    assert wrong.returncode == 1


def test_another_instances_key_exits_1_and_public_keys_can_be_given(tmp_path, record) -> None:
    path = write(tmp_path, "record.json", record)
    other = ECKey.generate_key("P-256", private=True).as_pem(private=True).decode()
    result = run("verify", path, env={"PLUGIN_SIGNING_KEY": other})
    assert result.returncode == 1 and "a key this service does not hold" in result.stderr
    jwks = write(tmp_path, "jwks.json", {"keys": [KEY.as_dict(private=False)]})
    assert run("verify", path, "--jwks", jwks, env={"PLUGIN_SIGNING_KEY": other}).stdout == VALID


@pytest.mark.parametrize(("content", "args", "message"), [
    ("{not json", (), "is not valid JSON"),
    ({"resourceType": "Patient"}, (), "neither a Bundle nor a JSON array"),
    ([], (), "exactly one QuestionnaireResponse, not 0"),
    ([{"resourceType": "QuestionnaireResponse", "status": "completed"}], (),
     "one Provenance with a JOSE signature of the response, not 0"),
    ([], ("--reference", "Patient/x"), "expected DELIVERED=SIGNED"),
])
def test_an_unusable_file_or_argument_is_one_line_and_exit_2(tmp_path, content, args,
                                                             message) -> None:
    result = run("verify", write(tmp_path, "record.json", content), *args, env=ENV)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_an_unusable_configured_key_exits_4(tmp_path, record) -> None:
    result = run("verify", write(tmp_path, "record.json", record),
                 env={"PLUGIN_SIGNING_KEY": "not a key"})
    assert (result.returncode, result.stderr) == (
        4, "error: SIGNING_KEY holds no usable private key (PEM, RSA or EC P-256)\n")


def test_the_delivery_rewrites_of_subject_and_author_are_undone(tmp_path, record) -> None:
    """Delivery drops our Patient and Practitioner references (the EHR gets identifiers
    and names): ``--subject`` puts ours back, the author's comes from Signature.who."""
    response = copy.deepcopy(record["entry"][0]["resource"])
    del response["subject"]["reference"], response["author"]["reference"]
    path = write(tmp_path, "delivered.json", [response, record["entry"][1]["resource"]])
    assert run("verify", path, env=ENV).returncode == 1
    result = run("verify", path, "--subject", "Patient/p-1", env=ENV)
    assert (result.returncode, result.stdout) == (0, VALID)
    del response["subject"]
    path = write(tmp_path, "no-subject.json", [response, record["entry"][1]["resource"]])
    result = run("verify", path, "--subject", "Patient/p-1", env=ENV)
    assert result.returncode == 2 and "no subject" in result.stderr
