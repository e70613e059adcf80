"""What a person reads never shows the engine's internals (issue 12, item 4).

For EVERY golden case in tests/data/cases/ (the folder is read, so cases added later are
scanned too) the review page, the signed record page, the clinician summary PDF, the
patient handout PDF and the CDS Hooks cards are rendered as a user gets them, and their
text must hold no internal id of the decision knowledge (the hyphenated ids in
mappings/decision/: findings, conditions, red flags, factors, caveats, services, rules,
physiotherapy focus, citations), no empty list ("Not assessed: ; ; ;") and no source
that nothing cites. Rendering every case takes about a second each (two PDFs).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from plugin import __version__
from plugin.adapters import store
from plugin.core import patient as patient_mod
from plugin.record import pipeline
from plugin.decision import cards
from plugin.decision.assessment import assess
from tests.support import tablet
from tests.support.pdfs import text_of
from tests.support.signin import signed_in

ROOT = Path(__file__).resolve().parents[1]
CASES = sorted((ROOT / "tests" / "data" / "cases").glob("*.json"))
DECISION = ROOT / "mappings" / "decision"


def _ids(node: Any) -> set[str]:
    """Every ``id`` (and physiotherapy focus ``for``) value in a knowledge file, and the
    keys of the handouts' per-condition table."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("id", "for") and isinstance(value, str):
                found.add(value)
            found |= _ids(value)
        if "conditions" in node and isinstance(node["conditions"], dict):
            found |= set(node["conditions"])
    elif isinstance(node, list):
        for value in node:
            found |= _ids(value)
    return found


#: Hyphenated ids only: one-word ids ("fever", "physiotherapy") are ordinary English.
INTERNAL_IDS = sorted({i for path in DECISION.glob("*.json")
                       for i in _ids(json.loads(path.read_text(encoding="utf-8"))) if "-" in i},
                      key=len, reverse=True)
#: An id as a whole token: not part of a longer hyphenated word.
ID_PATTERN = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, INTERNAL_IDS)) + r")(?![\w-])")
#: A list with nothing in it: "Not assessed: ; ; ;", "for: .", "[]", "()".
EMPTY_LIST = re.compile(r"[:;,]\s*[;,.](?!\d)|\[\s*\]|\(\s*\)")
CITED = re.compile(r"\[(\d+(?:,\s*\d+)*)\]")


class _Text(HTMLParser):
    """The text a person sees on a page, with the tooltips and labels they might read
    (``title``, ``alt``, ``aria-label``); never scripts or styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self._hidden += 1
        self.parts += [v for k, v in attrs if k in ("title", "alt", "aria-label") and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def page_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def card_text(card: dict[str, Any]) -> str:
    """What a clinician reads on a CDS Hooks card: summary, detail, source label and
    topic, suggestion and link labels (codes and resources are for machines)."""
    parts = [card["summary"], card.get("detail", ""), card["source"]["label"],
             card["source"].get("topic", {}).get("display", "")]
    parts += [s["label"] for s in card.get("suggestions", [])]
    parts += [a.get("description", "") for s in card.get("suggestions", [])
              for a in s.get("actions", [])]
    parts += [link["label"] for link in card.get("links", [])]
    return "\n".join(parts)


def problems(text: str) -> list[str]:
    found = [f"internal id {m.group(1)!r} in ...{text[max(0, m.start() - 60):m.end() + 30]}..."
             for m in ID_PATTERN.finditer(text)]
    found += [f"empty list in ...{text[max(0, m.start() - 60):m.end() + 20]}..."
              for m in EMPTY_LIST.finditer(text)]
    return found


def uncited_sources(text: str, heading: str = "Sources") -> list[int]:
    """The numbers of listed sources that no [n] before the list points to."""
    body, _, listed = text.rpartition(heading)
    numbers = {int(n) for m in CITED.finditer(listed) for n in re.split(r",\s*", m.group(1))}
    cited = {int(n) for m in CITED.finditer(body) for n in re.split(r",\s*", m.group(1))}
    return sorted(numbers - cited)


def _answers(case: dict[str, Any]) -> dict[str, Any]:
    """The case's answers as the tablet holds them, with the age the tablet prefills."""
    answers = dict(case["answers"])
    on = dt.datetime.fromisoformat(case["authored"]).date()
    age = patient_mod.age_of(case["patient"], on)
    if age is not None:
        answers.setdefault("patient.age-years", age)
    return answers


def _cards(kb: Any, case: dict[str, Any]) -> list[dict[str, Any]]:
    """The cards a CDS Hooks call gets for the case's exam, read back from the
    Observations as an EHR would prefetch them."""
    form = kb.forms["posterior-thigh-exam"]
    bundle = pipeline.extract(kb, case["answers"], patient=case["patient"],
                              now=dt.datetime.fromisoformat(case["authored"]),
                              plugin_version=__version__)
    observations = []
    for n, entry in enumerate(bundle["entry"]):
        if entry["resource"]["resourceType"] == "Observation":
            observations.append({**entry["resource"], "id": f"obs-{n}"})
    exam = cards.exam_facts(form, kb.mappings_for(form), observations,
                            patient_id=case["patient"]["id"], patient=case["patient"])
    if exam is None:  # nothing the EHR could prefetch: no cards but the launch card
        return [cards.launch_card("https://app.example/launch", kb.decision, has_exam=False)]
    return cards.assessment_cards(
        kb.decision, assess(kb.decision, exam.facts),
        subject={"reference": f"Patient/{case['patient']['id']}"}, encounter=None,
        exam_id="scan", authored=case["authored"], recorded=exam.recorded)


def test_the_id_set_is_built_from_the_knowledge() -> None:
    """The scan knows the ids it looks for, including those that read like words when
    hyphenated (a test that cannot fail would be no test)."""
    assert {"slr-positive", "cauda-equina-syndrome", "proximal-hamstring-tendinopathy",
            "hip-drop", "mri-lumbar-spine", "ces-emergency-department", "bmj-ces"} \
        <= set(INTERNAL_IDS)
    assert "fever" not in INTERNAL_IDS  # a word, not scanned for
    assert problems("Not assessed: slr-positive, neurological-deficit")
    assert problems("Not assessed: ; ; ;")
    assert not problems("Straight leg raise negative; no neurological deficit (L4-S1) [1, 2].")
    assert uncited_sources("For: x [1]. Sources [1] A. [2] B.") == [2]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_no_page_pdf_or_card_shows_an_internal_id_or_an_empty_list(app, kb, path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    form = kb.forms["posterior-thigh-exam"]
    client = signed_in(app)
    answers = _answers(case)
    patient = store.from_app(app).add_patient({
        "resourceType": "Patient", "name": [{"family": "Scan", "given": ["Test"]}],
        "birthDate": case["patient"]["birthDate"]})
    exam = tablet.draft(app, form, patient, answers)
    review = client.get(f"/exams/{exam.id}/review")
    assert review.status_code == 200
    texts = {"review page": page_text(review.get_data(as_text=True))}
    tablet.sign(app, kb, exam, patient, dt.datetime.fromisoformat(case["authored"]), answers)
    record = client.get(f"/exams/{exam.id}/record")
    assert record.status_code == 200
    texts["record page"] = page_text(record.get_data(as_text=True))
    for name, url in (("summary PDF", "summary.pdf"), ("handout PDF", "handout.pdf")):
        response = client.get(f"/exams/{exam.id}/{url}")
        assert response.status_code == 200 and response.data.startswith(b"%PDF")
        texts[name] = text_of(response.data)
    for n, card in enumerate(_cards(kb, case), 1):
        texts[f"CDS card {n}"] = card_text(card)

    found = {name: problems(text) for name, text in texts.items()}
    assert not any(found.values()), {k: v for k, v in found.items() if v}
    for name in ("review page", "record page", "summary PDF"):
        assert uncited_sources(texts[name]) == [], name
    assert "Decision support" in texts["review page"]  # the assessment was rendered
