"""Benchmark: extract a complete exam (every item answered, both sides) to a Bundle.

Target (issue "Foundation"): p50 <= 15 ms per exam on one core, measured from plain
answers to the transaction Bundle serialised as JSON - what the API does per request.
Run with ``scripts/bench``; not part of the test suite.
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin import __version__, knowledge  # noqa: E402
from plugin.config import DEFAULTS  # noqa: E402
from plugin.record import pipeline  # noqa: E402

TARGET_P50_MS = 15.0


def complete_answers(form: Any) -> dict[str, Any]:
    """A valid answer for every answerable item, dependants enabled."""
    answers: dict[str, Any] = {}
    for item in form.answerable:
        if item.type == "boolean":
            value: Any = True
        elif item.type == "integer":
            value = item.max_value if item.max_value is not None else 1
        elif item.type == "quantity":
            value = {"value": 6, "unit": item.unit_options[0] if item.unit_options else "wk"}
        elif item.type == "choice":
            codes = [o.code for o in item.options if not (item.repeats and o.exclusive)]
            value = codes[:3] if item.repeats else codes[-1]
        else:
            value = "x"
        answers[item.link_id] = value
    answers["history.onset"] = "sudden"
    answers["sitting.effect"] = "aggravates"
    answers["patient.age-years"] = 36  # matches the benchmark Patient's birthDate
    return answers


def main() -> None:
    kb = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])
    form = kb.forms[pipeline.DEFAULT_FORM]
    data = complete_answers(form)
    patient = {"resourceType": "Patient", "id": "bench", "birthDate": "1990-05-01"}
    now = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.timezone.utc)

    def run() -> dict[str, Any]:
        return pipeline.extract(kb, data, patient=patient, now=now, plugin_version=__version__)

    def once() -> int:
        return len(json.dumps(run()))

    for _ in range(20):  # warm-up: schema cache, imports
        once()
    samples = []
    for _ in range(300):
        start = time.perf_counter()
        size = once()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p50, p95 = statistics.median(samples), samples[int(len(samples) * 0.95)]
    entries = len(run()["entry"])
    verdict = "OK" if p50 <= TARGET_P50_MS else "OVER TARGET"
    print(f"extract complete exam: {len(data)} answers -> {entries} Bundle entries, "
          f"{size / 1024:.0f} KiB JSON")
    print(f"  p50 {p50:.2f} ms  p95 {p95:.2f} ms  (target p50 <= {TARGET_P50_MS} ms: {verdict})")


if __name__ == "__main__":
    main()
