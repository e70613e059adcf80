"""Benchmark: the service as deployed (gunicorn over real HTTP on loopback, signed in,
every read audited), on SQLite and on a throwaway PostgreSQL, each request type
interleaved with its baseline in one run.

Targets (issue 17, benchmarks 7(b), 7(d), 7(e)):
- (d) Observation search for a patient with 50 signed exams (complete exams, every
  item answered: ~100 Observations each), ``GET /fhir/Observation?patient=<id>``
  (first page of 50, newest first, total counted) and with ``date=ge…&date=le…&
  _sort=date``: p50 <= 30 ms. Baseline beside it: ``GET /fhir/metadata`` (the HTTP,
  sign-in and guard floor).
- (e) ``POST /fhir/QuestionnaireResponse/$extract`` of the standard SDC body (Parameters
  with ``questionnaire-response``: a complete, signed exam's response) over HTTP:
  p99 <= 2x its own p50.
- (b) the draft clinician summary, ``GET /exams/<id>/summary.pdf`` of an exam in
  progress (every item answered), within 1.1x of WeasyPrint's own time for the *same
  HTML* with the same fetcher (``pdf.SafeFetcher``), fonts, stylesheets and PDF/A-3a
  variant (output intent included): the project's overhead (HTTP, audit, assessment,
  HTML, the render thread). The baseline runs in this process, the service in its own:
  each is the median of interleaved runs.
Run with ``scripts/bench`` (``--runs N`` for the request rounds, default 300;
``--pdf-runs N``, default 15; ``--backend sqlite|postgresql`` for one backend); not part
of the test suite. Exits 1 naming any target missed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ has no __init__

from bench_extract import complete_answers  # noqa: E402
from plugin import create_app, knowledge  # noqa: E402
from plugin.adapters import store as storage, users  # noqa: E402
from plugin.adapters.documents import pdf, render  # noqa: E402
from plugin.config import DEFAULTS  # noqa: E402
from plugin.core import drafts  # noqa: E402
from plugin.record import exams, pipeline, signoff, trail  # noqa: E402
from tests.support import postgres, served  # noqa: E402
from tests.support.keys import SIGNING_KEY  # noqa: E402 - never a key in the instance folder

EXAMS = 50
SEARCH_P50_MS = 30.0
EXTRACT_P99_OVER_P50 = 2.0
SUMMARY_RATIO = 1.1
RUNS, PDF_RUNS, WARMUPS = 300, 15, 10
FIRST = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
PATIENT = {"resourceType": "Patient", "name": [{"family": "Bench", "given": ["Ana"]}],
           "birthDate": "1990-05-01", "identifier": [{"system": "urn:example:mrn",
                                                      "value": "B-1"}]}


def _percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def prepare(url: str, kb: Any) -> dict[str, Any]:
    """The database for one backend: a clinician, a patient with EXAMS signed complete
    exams (a week apart, through the record's use cases, so each stored its
    Observations) and one complete exam in progress; the $extract body."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SIGNING_KEY": SIGNING_KEY})
    store = storage.from_app(app)
    users.add(store, served.USERNAME, display_name=served.DISPLAY_NAME, role="clinician",
              password=served.PASSWORD, now=dt.datetime.now(dt.timezone.utc))
    form = kb.forms[pipeline.DEFAULT_FORM]
    patient = exams.add_patient(store, PATIENT, by=trail.COMMAND_LINE)
    answers = complete_answers(form)
    del answers["patient.age-years"]  # filled from the birthDate on each exam's date
    answers = {k: v for k, v in answers.items() if k in drafts.check(form, answers).valid}
    signer = signoff.Signer("Dr Bench")
    response = None
    for n in range(EXAMS):
        when = FIRST + dt.timedelta(days=7 * n)
        exam = exams.begin(store, kb, patient, now=when, by=trail.COMMAND_LINE)
        exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                                   answers=answers, now=when, by=trail.COMMAND_LINE)
        response = exams.sign(store, kb, store.exam(exam.id), patient,
                              expected_version=exam.version, signer=signer, now=when,
                              ehr_base=None, by=trail.COMMAND_LINE).response
    draft = exams.begin(store, kb, patient, now=FIRST, by=trail.COMMAND_LINE)
    draft, _ = exams.save_draft(store, form, draft, patient, expected_version=draft.version,
                                answers=answers, now=FIRST, by=trail.COMMAND_LINE)
    total, _ = store.search_observations(patient_ids=[patient.id], limit=0)
    store.dispose()
    html = _draft_summary_html(kb, store, draft.id, patient)
    return {"patient": patient.id, "draft": draft.id, "observations": total, "html": html,
            "extract": {"resourceType": "Parameters", "parameter": [
                {"name": "questionnaire-response", "resource": response}]}}


def _draft_summary_html(kb: Any, store: storage.Store, exam_id: str,
                        patient: storage.PatientRecord) -> str:
    """The HTML the service renders for the draft's summary (``web.exam.summary_pdf``:
    the draft's valid answers, its context, no clinician)."""
    from plugin.core.responses import Exam

    record = store.exam(exam_id)
    form = kb.form_for(record.questionnaire)
    checked = drafts.check(form, record.answers)
    exam = Exam(form, checked.valid, exams.draft_context(record.id, record.encounter, patient,
                                                         record.updated))
    assessment = pipeline.assess_answers(kb, exam.answers).as_json()
    visit = render.Visit(patient=patient.resource, clinician=None,
                         exam_date=render.exam_date(exam.context.authored, record.updated),
                         identifier=exam.exam_id, signed=False)
    return render.summary_html(kb, exam, assessment, visit)


def weasyprint_alone(html: str) -> bytes:
    """WeasyPrint's own render of ``html`` as ``pdf.render`` asks for it (same fetcher,
    stylesheets, PDF/A-3a with its output intent), without the render thread."""
    import weasyprint

    options: dict[str, Any] = {"pdf_variant": "pdf/a-3a", "presentational_hints": False,
                               "output_intent": pdf._SRGB_KEY}
    document = weasyprint.HTML(string=html, base_url=None, url_fetcher=pdf.SafeFetcher())
    rendered = document.render(color_profiles={pdf._SRGB_KEY: pdf._srgb_profile()},
                               stylesheets=[pdf.stylesheet(n)
                                            for n in render.STYLESHEETS["summary"]],
                               **options)
    rendered.metadata.title = render.SUMMARY_TITLE
    return rendered.write_pdf(**options)


def interleaved(fns: dict[str, Callable[[], Any]], runs: int,
                warmups: int = WARMUPS) -> dict[str, list[float]]:
    """Milliseconds of each function over ``runs`` rounds, the functions interleaved."""
    for _ in range(warmups):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return samples


def measure(backend: str, url: str, kb: Any, runs: int, pdf_runs: int,
            folder: Path) -> dict[str, Any]:
    data = prepare(url, kb)
    env = {"PLUGIN_DATABASE_URL": url, "PLUGIN_SIGNING_KEY": SIGNING_KEY, **served.PLAIN_HTTP}
    with served.serve(folder, env) as base:
        opener = served.signed_in_opener(base)

        def get(path: str) -> Callable[[], bytes]:
            def call() -> bytes:
                with opener.open(base + path, timeout=60) as response:
                    assert response.status == 200, (path, response.status)
                    return response.read()
            return call

        body = json.dumps(data["extract"]).encode()

        def extract() -> bytes:
            request = urllib.request.Request(
                f"{base}/fhir/QuestionnaireResponse/$extract", data=body, method="POST",
                headers={"Content-Type": "application/fhir+json"})
            with opener.open(request, timeout=60) as response:
                assert response.status == 200
                return response.read()

        patient = data["patient"]
        search = get(f"/fhir/Observation?patient={patient}")
        window = get(f"/fhir/Observation?patient={patient}&date=ge2026-03-01"
                     f"&date=le2026-09-30&_sort=date")
        page = json.loads(search())
        assert page["total"] == data["observations"] and len(page["entry"]) == 50
        requests = interleaved({"metadata": get("/fhir/metadata"), "search": search,
                                "search by date": window, "extract": extract}, runs)
        summary = get(f"/exams/{data['draft']}/summary.pdf")
        html = data["html"]
        documents = interleaved({"ours": summary, "weasyprint": lambda: weasyprint_alone(html)},
                                pdf_runs, warmups=2)
    return {"backend": backend, "observations": data["observations"], "requests": requests,
            "documents": documents, "url": url, "extract": data["extract"]}


def extract_gc(url: str, body: dict[str, Any], runs: int) -> None:
    """Why (e) misses, shown in this process (Flask's test client, no network): the same
    ``$extract`` with the heap as start-up leaves it, then after ``gc.freeze()`` (the
    knowledge, modules and app moved out of the collector's reach, as a gunicorn master
    can do before it forks). Printed, not judged."""
    import gc

    from tests.support.signin import signed_in

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SIGNING_KEY": SIGNING_KEY,
                      "TESTING": True})
    client, data = signed_in(app), json.dumps(body)
    full: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                watch.started = time.perf_counter()  # type: ignore[attr-defined]
            else:
                full.append((time.perf_counter() - watch.started) * 1000)  # type: ignore

    def extract() -> None:
        response = client.post("/fhir/QuestionnaireResponse/$extract", data=data,
                               content_type="application/fhir+json")
        assert response.status_code == 200

    gc.callbacks.append(watch)
    try:
        for label in ("as started", "after gc.freeze()"):
            if label != "as started":
                gc.collect()
                gc.freeze()
            full.clear()
            samples = interleaved({"extract": extract}, runs)["extract"]
            p50, p99 = statistics.median(samples), _percentile(samples, 0.99)
            print(f"  in process, {label}: $extract p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"({p99 / p50:.2f}x); {len(full)} full collections, "
                  f"{max(full, default=0):.0f} ms the longest; "
                  f"{len(gc.get_objects())} objects tracked")
    finally:
        gc.callbacks.remove(watch)
        gc.unfreeze()
        storage.from_app(app).dispose()


def report(result: dict[str, Any], runs: int, pdf_runs: int) -> list[str]:
    """Print one backend's figures; the targets it missed."""
    requests, documents = result["requests"], result["documents"]
    print(f"{result['backend']}: one patient, {EXAMS} signed complete exams, "
          f"{result['observations']} current Observations; {runs} rounds interleaved after "
          f"{WARMUPS} warm-ups, over HTTP (gunicorn), signed in, reads audited")
    print(f"  {'request':<16}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  {'max ms':>7}")
    for name, samples in requests.items():
        print(f"  {name:<16}  {statistics.median(samples):>7.2f}  "
              f"{_percentile(samples, 0.95):>7.2f}  {_percentile(samples, 0.99):>7.2f}  "
              f"{max(samples):>7.2f}")
    misses = []
    for name in ("search", "search by date"):
        p50 = statistics.median(requests[name])
        if p50 > SEARCH_P50_MS:
            misses.append(f"{result['backend']} (d) {name} p50 {p50:.1f} ms")
    p50, p99 = statistics.median(requests["extract"]), _percentile(requests["extract"], 0.99)
    if p99 > EXTRACT_P99_OVER_P50 * p50:
        misses.append(f"{result['backend']} (e) $extract p99 {p99 / p50:.2f}x p50")
    print(f"  (d) search p50 <= {SEARCH_P50_MS:.0f} ms; (e) $extract p99 / p50 = "
          f"{p99 / p50:.2f} (target <= {EXTRACT_P99_OVER_P50})")
    ours, alone = (statistics.median(documents[k]) for k in ("ours", "weasyprint"))
    print(f"  (b) draft summary.pdf over HTTP {ours:.1f} ms vs WeasyPrint alone on the same "
          f"HTML {alone:.1f} ms = {ours / alone:.2f}x (target <= {SUMMARY_RATIO}x; median of "
          f"{pdf_runs}, interleaved)")
    if ours / alone > SUMMARY_RATIO:
        misses.append(f"{result['backend']} (b) summary {ours / alone:.2f}x")
    return misses


def main() -> None:
    warnings.simplefilter("ignore", ResourceWarning)  # WeasyPrint's PDF/A profile file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--pdf-runs", type=int, default=PDF_RUNS)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    args = parser.parse_known_args()[0]  # scripts/bench passes its arguments to all
    kb = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for backend in args.backend or ("sqlite", "postgresql"):
            if backend == "sqlite":
                result = measure(backend, f"sqlite:///{folder / 'bench.sqlite3'}", kb,
                                 args.runs, args.pdf_runs, folder)
            else:
                server = postgres.start()
                try:
                    result = measure(backend, server.url(server.create_database()), kb,
                                     args.runs, args.pdf_runs, folder)
                    misses += report(result, args.runs, args.pdf_runs)
                    extract_gc(result["url"], result["extract"], args.runs)
                finally:
                    server.stop()
                continue
            misses += report(result, args.runs, args.pdf_runs)
            extract_gc(result["url"], result["extract"], args.runs)
    print("targets: " + ("OK" if not misses else "MISSED: " + "; ".join(misses)))
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
