"""A follow-up's record, with decision support over its episode (the reasons quoting the
visits compared), validates under fhir.resources AND the independent validator, and the
EHR gets the suggestions the clinician reviewed, not the single exam's."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from plugin import __version__
from plugin.record import pipeline
from tests.decision.test_episode_cases import EPISODES, _assess
from tests.support.conformance import IndependentValidator, assert_conformant


@pytest.fixture(scope="module")
def validator():
    with IndependentValidator() as v:
        yield v


@pytest.mark.parametrize("path", EPISODES, ids=lambda p: p.stem)
def test_a_follow_up_record_is_conformant_and_carries_the_episode_suggestions(
        kb, validator, path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    result, _ = _assess(kb, case, len(case["visits"]) - 1)
    form = kb.forms["posterior-thigh-exam"]
    visit = case["visits"][-1]
    exam = pipeline.exam_from_input(
        kb, {k: v for k, v in visit["answers"].items() if k in form.index},
        patient=case["patient"],
        now=dt.datetime.fromisoformat(visit["date"]).replace(hour=10, tzinfo=dt.timezone.utc))
    record = pipeline.record(kb, exam, plugin_version=__version__,
                             recorded=dt.datetime(2026, 11, 2, 12, tzinfo=dt.timezone.utc),
                             assessed=result)
    assert_conformant(validator, record)
    for entry in record["entry"]:
        assert_conformant(validator, entry["resource"])
    requests = [e["resource"] for e in record["entry"]
                if e["resource"]["resourceType"] == "ServiceRequest"]
    texts = json.dumps(requests)
    for service, compared in case["expected"]["rules_cited"].items():
        assert compared in texts, service
    assert len(requests) == len(result.referrals)
