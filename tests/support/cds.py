"""Calling the CDS Hooks services in tests, shared by tests/web/test_cds_*.py: the
service URLs, hook request bodies with prefetch built from golden cases, a signed call,
and an app of a module's own.

The CDS client (an EHR) is simulated with keys made at test time (tests/support/
jwt_keys.py); prefetched Observations are the product's own extraction of golden cases,
as an EHR holds them after delivery.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

from plugin import __version__, create_app
from plugin.adapters import store
from plugin.record import pipeline
from tests.support.jwt_keys import ISSUER, JKU, CdsClient

CASES = Path(__file__).resolve().parents[1] / "data" / "cases"
BASE = "http://localhost/cds-services"
PATIENT_VIEW = f"{BASE}/posterior-thigh-patient-view"
MRI_ORDER = f"{BASE}/posterior-thigh-mri-order"
LUMBAR_MRI = {"system": "http://loinc.org", "code": "24968-0", "display": "MR Lumbar spine"}

#: What an EHR sends when it looked and found neither (so nothing is fetched).
NOTHING = {"patient": None, "observations": None}


def settings(ehr: CdsClient, **extra: Any) -> dict[str, Any]:
    """The app settings that make ``ehr`` (at jwt_keys.ISSUER) a known CDS client."""
    return {"CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": ehr.jwks(), "jku": JKU}},
            "SMART_LAUNCH_URL": "https://exam.example.org/launch", **extra}


@contextmanager
def app_with(folder: Path, app_settings: dict[str, Any]) -> Iterator[Flask]:
    """An app with ``app_settings``, its SQLite database in ``folder``; disposed after."""
    made = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                       "DATABASE_URL": f"sqlite:///{folder / 'exam.sqlite3'}",
                       **app_settings})
    try:
        yield made
    finally:
        store.from_app(made).dispose()


def case(name: str) -> dict[str, Any]:
    """A golden case of tests/data/cases."""
    return json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))


def observations(kb: Any, data: dict[str, Any], *, answers: dict[str, Any] | None = None,
                 effective: str | None = None) -> dict[str, Any]:
    """A searchset Bundle of the case's Observations (our extraction, with server ids);
    ``effective`` re-dates them (an exam made today)."""
    bundle = pipeline.extract(kb, {**data["answers"], **(answers or {})},
                              patient=data["patient"],
                              now=dt.datetime.fromisoformat(data["authored"]),
                              plugin_version=__version__)
    entries = []
    for n, entry in enumerate(e for e in bundle["entry"]
                              if e["resource"]["resourceType"] == "Observation"):
        resource = dict(entry["resource"], id=f"obs-{n}")
        if effective:
            resource["effectiveDateTime"] = resource["issued"] = effective
        entries.append({"fullUrl": f"https://ehr.example.org/fhir/Observation/obs-{n}",
                        "resource": resource, "search": {"mode": "match"}})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
            "entry": entries}


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def body(hook: str, patient_id: str = "p-1", *, prefetch: dict[str, Any] | None = NOTHING,
         **context: Any) -> dict[str, Any]:
    """A hook call; ``prefetch=None`` leaves the prefetch out."""
    made: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()),
                            "context": {"userId": "Practitioner/dr-1", "patientId": patient_id,
                                        **context}}
    if prefetch is not None:
        made["prefetch"] = dict(prefetch)
    return made


def orders(*codings: dict[str, str]) -> dict[str, Any]:
    """A draftOrders Bundle of ServiceRequests, one per coding."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "ServiceRequest", "id": f"sr-{n}", "status": "draft",
                      "intent": "order", "code": {"coding": [c]},
                      "subject": {"reference": "Patient/p-1"}}} for n, c in enumerate(codings)]}


def post(client, ehr: CdsClient, url: str, json_body: Any, *, token: str | None = None,
         **sign: Any):  # type: ignore[no-untyped-def]
    """POST ``json_body`` to the service at ``url`` with a token ``ehr`` signs (or
    ``token``)."""
    token = token if token is not None else ehr.sign(url, **sign)
    path = url.removeprefix("http://localhost")
    return client.post(path, json=json_body, headers={"Authorization": f"Bearer {token}"})


def refusal(response: Any) -> tuple[str, str]:
    """A refused CDS Hooks call's OperationOutcome as (issue code, every issue's text):
    what a client reads, the first issue being the message as a whole."""
    body = response.get_json()
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:300]
    assert body["resourceType"] == "OperationOutcome" and body["issue"], body
    return body["issue"][0]["code"], " ".join(i["details"]["text"] for i in body["issue"])
