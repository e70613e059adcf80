"""Benchmark: the progress page of a patient with 50 signed visits.

Target (issue 20): ``GET /patients/<id>/progress`` renders with p50 <= 100 ms. The
patient has 50 complete exams signed a week apart through the record's use cases (so
each stored its Observations, ~130 a visit, and its frozen assessment), the SLR angle,
pain and a LEFS total (a survey Observation a visit, as outcome measures store them)
changing from visit to visit, and referrals and care reported along the way: every
chart, table and marker the page can show. Measured in process through the app (a
signed-in test client: the guard, the read's audit commit, the two queries, the charts
and the template), after warm-ups, interleaved with a baseline (``GET /fhir/metadata``:
the guard and the app, no patient data). Prints p50 and p95 and exits 1 when the
target is missed.

``--runs N`` (default 100); ``--backend sqlite|postgresql`` (default sqlite; PostgreSQL
is a throwaway server). Other arguments ``scripts/bench`` passes to every benchmark are
ignored.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ has no __init__

from bench_extract import complete_answers  # noqa: E402
from plugin import create_app, knowledge  # noqa: E402
from plugin.adapters import observation_store, store as storage  # noqa: E402
from plugin.core import drafts  # noqa: E402
from plugin.record import exams, pipeline, signoff, trail  # noqa: E402
from tests.support.keys import SIGNING_KEY  # noqa: E402 - never a key in the instance folder
from tests.support.signin import signed_in  # noqa: E402

VISITS = 50
TARGET_P50_MS = 100.0
RUNS, WARMUPS = 100, 5
#: The baseline beside it: the guard and the app's floor, no patient data.
FLOOR = "/fhir/metadata"
FIRST = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
PATIENT = {"resourceType": "Patient", "name": [{"family": "Progress", "given": ["Ana"]}],
           "birthDate": "1990-05-01", "identifier": [{"system": "urn:example:mrn",
                                                      "value": "P-50"}]}
LEFS = "http://posterior-thigh-exam.org/fhir/CodeSystem/outcome-measures"
SURVEY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                      "code": "survey"}]}


def prepare(app: Any) -> str:
    """The patient with VISITS signed visits; their id."""
    store = storage.from_app(app)
    kb = app.extensions[knowledge.EXTENSION_KEY]
    form = kb.forms[pipeline.DEFAULT_FORM]
    answers = complete_answers(form)
    del answers["patient.age-years"]  # filled from the birthDate on each exam's date
    answers = {k: v for k, v in answers.items() if k in drafts.check(form, answers).valid}
    patient = exams.add_patient(store, PATIENT, by=trail.COMMAND_LINE)
    signer = signoff.Signer("Dr Bench")
    for n in range(VISITS):
        when = FIRST + dt.timedelta(days=7 * n)
        visit = {**answers, "slr.left.onset-angle": min(90, 30 + n),
                 "pain.current": max(0, 8 - n // 6), "history.pt-weeks": min(n, 52)}
        exam = exams.begin(store, kb, patient, now=when, by=trail.COMMAND_LINE)
        exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                                   answers=visit, now=when, by=trail.COMMAND_LINE)
        if n % 10 == 0:
            exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                         impression={"referrals": {"physiotherapy": {
                                             "order": True, "priority": "routine",
                                             "reason": "Loading programme."}}},
                                         by=trail.COMMAND_LINE)
        exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=signer,
                   now=when, ehr_base=None, by=trail.COMMAND_LINE)
        _lefs(store, patient.id, exam.id, when, min(80, 30 + n))
        print(f"\r  preparing: {n + 1}/{VISITS} visits signed", end="", file=sys.stderr)
    print(file=sys.stderr)
    return patient.id


def _lefs(store: storage.Store, patient_id: str, exam_id: str, when: dt.datetime,
          score: int) -> None:
    resource = {"resourceType": "Observation", "id": f"{exam_id}-lefs", "status": "final",
                "category": [SURVEY], "code": {"coding": [{"system": LEFS,
                                                           "code": "lefs-total"}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": when.isoformat(), "valueInteger": score}
    record = observation_store.ObservationRecord(
        id=f"{exam_id}-lefs", exam_id=exam_id, revision=1, patient_id=patient_id, date=when,
        resource=resource, codes=((LEFS, "lefs-total"),))
    with store.engine.begin() as conn:
        observation_store.insert_revision(conn, exam_id, 1, patient_id, [record], latest=1)


def measure(url: str, runs: int) -> dict[str, Any]:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SIGNING_KEY": SIGNING_KEY,
                      "TESTING": True})
    patient_id = prepare(app)
    client = signed_in(app)
    path = f"/patients/{patient_id}/progress"
    samples: dict[str, list[float]] = {path: [], FLOOR: []}
    for n in range(WARMUPS + runs):
        for url in (path, FLOOR):  # interleaved: both see the same machine
            start = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - start) * 1000
            assert response.status_code == 200, response.status_code
            if n >= WARMUPS:
                samples[url].append(elapsed)
    html = client.get(path).get_data(as_text=True)
    storage.from_app(app).dispose()
    ordered = sorted(samples[path])
    return {"p50": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
            "floor": statistics.median(samples[FLOOR]),
            "charts": html.count('class="progress-chart"'), "kb": len(html) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        if args.backend == "postgresql":
            from tests.support import postgres
            server = postgres.start()
            try:
                result = measure(server.url(server.create_database()), args.runs)
            finally:
                server.stop()
        else:
            result = measure(f"sqlite:///{tmpdir}/progress.sqlite3", args.runs)
    ok = result["p50"] <= TARGET_P50_MS
    print(f"progress page, {args.backend}: one patient, {VISITS} signed visits, "
          f"{result['charts']} charts ({result['kb']:.0f} KB HTML), {args.runs} GETs in "
          f"process after {WARMUPS} warm-ups, signed in, read audited")
    print(f"  p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms "
          f"(target p50 <= {TARGET_P50_MS:.0f} ms: {'OK' if ok else 'MISSED'}); "
          f"baseline GET {FLOOR} p50 {result['floor']:.1f} ms")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
