"""The patient handout's content: released with the decision rules, one entry per
condition, plain language (reading grade 8 or below), no false certainty, drawings that
are safe to embed, and a broken copy stops start-up naming the file and the place."""
from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import textstat

from plugin import knowledge
from plugin.config import DEFAULTS
from tests.support import knowledge_copies
from plugin.decision import handouts
from plugin.errors import KnowledgeError

MDIR = Path(DEFAULTS["MAPPINGS_DIR"])
HANDOUTS = MDIR / "decision" / "handouts.json"
MAX_GRADE = 8.0
SVG = "{http://www.w3.org/2000/svg}"
DRAWINGS = sorted(knowledge.DRAWINGS_DIR.glob("*.svg"))
#: shared/clinical.md section 7: these handouts must carry the emergency box.
SPINE_OR_NERVE = {"lumbar-radiculopathy", "lumbar-spinal-stenosis", "deep-gluteal-syndrome",
                  "hamstring-syndrome", "neural-mechanosensitivity", "referred-lumbar-pain"}


def _raw() -> dict[str, Any]:
    return json.loads(HANDOUTS.read_text(encoding="utf-8"))


def test_the_real_handouts_load_with_the_knowledge(kb) -> None:
    h = kb.handouts
    assert isinstance(h, handouts.Handouts)
    assert h.version == kb.decision.version == _raw()["version"]
    assert list(h.conditions) == [c.id for c in kb.decision.conditions]
    for condition in kb.decision.conditions:
        handout = h.for_condition(condition.id)
        assert handout.condition == condition.id
        assert handout.do and handout.avoid and handout.come_back and handout.citations
        assert len(handout.exercises) <= 3
        for exercise in handout.exercises:
            assert exercise.steps and exercise.dose
    # A suspected avulsion waits for the surgeon; every other handout starts exercises.
    without = [c for c, x in h.conditions.items() if not x.exercises]
    assert without == ["proximal-hamstring-avulsion"]
    assert h.emergency.signs and set(h.emergency.citations) == {"bmj-ces", "rcgp-sciatica"}
    assert h.general_note and h.general_come_back and h.general_citations
    with pytest.raises(KeyError, match="gout"):
        h.for_condition("gout")


def test_every_drawing_named_is_shipped_and_every_shipped_drawing_is_used(kb) -> None:
    named = {x.drawing for h in kb.handouts.conditions.values() for x in h.exercises if x.drawing}
    assert named == {p.name for p in DRAWINGS}
    assert 4 <= len(DRAWINGS) <= 8


@pytest.mark.parametrize("condition", sorted(json.loads(HANDOUTS.read_text("utf-8"))["conditions"]))
def test_each_handout_reads_at_grade_8_or_below(kb, condition) -> None:
    text = kb.handouts.for_condition(condition).text()
    grade = textstat.flesch_kincaid_grade(text)
    assert grade <= MAX_GRADE, f"{condition}: Flesch-Kincaid grade {grade} > {MAX_GRADE}"


def test_the_emergency_box_and_general_advice_read_at_grade_8_or_below(kb) -> None:
    grade = textstat.flesch_kincaid_grade(kb.handouts.emergency.text())
    assert grade <= MAX_GRADE, f"emergency box: Flesch-Kincaid grade {grade} > {MAX_GRADE}"
    general = " ".join([kb.handouts.general_note, *kb.handouts.general_come_back])
    grade = textstat.flesch_kincaid_grade(general)
    assert grade <= MAX_GRADE, f"general advice: Flesch-Kincaid grade {grade} > {MAX_GRADE}"


def test_the_emergency_box_prints_on_every_spine_or_nerve_handout(kb) -> None:
    flagged = {c for c, h in kb.handouts.conditions.items() if h.spine_or_nerve}
    assert SPINE_OR_NERVE <= flagged, sorted(SPINE_OR_NERVE - flagged)
    # tendon, muscle and pelvic-joint handouts do not alarm people without cause
    assert not flagged & {"proximal-hamstring-tendinopathy", "hamstring-strain"}
    # the box carries every sign of clinical.md section 7
    signs = " ".join(kb.handouts.emergency.signs).lower()
    for word in ("bottom", "urine", "bowels", "sex", "both legs"):
        assert word in signs, word


def test_no_handout_states_the_condition_as_certain(kb) -> None:
    for condition, h in kb.handouts.conditions.items():
        assert not re.search(r"\byou(?:'ve| have)\b", h.what, re.IGNORECASE), condition
        assert re.search(r"suggests|most likely|probably|\bmay\b", h.what), condition
    assert "clinician decides with you" in kb.handouts.general_note


def test_every_citation_is_one_of_the_release(kb) -> None:
    known = set(kb.decision.citations)
    h = kb.handouts
    cited = {*h.emergency.citations, *h.general_citations,
             *(c for x in h.conditions.values() for c in x.citations)}
    assert cited <= known


def test_the_records_are_frozen(kb) -> None:
    handout = kb.handouts.for_condition("hamstring-strain")
    with pytest.raises(AttributeError):
        handout.title = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        kb.handouts.conditions["x"] = handout  # type: ignore[index]
    assert isinstance(handout.do, tuple) and isinstance(handout.exercises[0].steps, tuple)


# --- drawings ------------------------------------------------------------------------

@pytest.mark.parametrize("path", DRAWINGS, ids=lambda p: p.name)
def test_each_drawing_is_a_safe_accessible_svg(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("viewBox"), path.name
    title = root.find(f"{SVG}title")
    assert title is not None and (title.text or "").strip(), f"{path.name}: no <title>"
    for element in root.iter():
        assert element.tag.rsplit("}", 1)[-1].lower() not in ("script", "foreignobject"), path.name
        for name, value in element.attrib.items():
            if name.rsplit("}", 1)[-1] == "href":
                assert value.startswith("#"), f"{path.name}: external reference {value!r}"
            assert not name.lower().startswith("on"), f"{path.name}: event handler {name}"
    assert "<script" not in text.lower() and "url(http" not in text.replace(" ", "").lower()
    assert len(text.encode()) <= 4096, f"{path.name}: keep drawings small"


# --- broken copies -----------------------------------------------------------------------

def _edit(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        path = root / "mappings" / "decision" / "handouts.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")
    return corrupt


def _strain(data: dict[str, Any]) -> dict[str, Any]:
    return data["conditions"]["hamstring-strain"]


BROKEN = [
    ("unknown key", _edit(lambda d: _strain(d).update(colour="red")),
     "conditions.hamstring-strain.colour", "Unknown field"),
    ("unknown key in an exercise", _edit(lambda d: _strain(d)["exercises"][1].update(reps=3)),
     "conditions.hamstring-strain.exercises[1].reps", "Unknown field"),
    ("unknown top-level key", _edit(lambda d: d.update(extras={})), "extras", "Unknown field"),
    ("missing condition", _edit(lambda d: d["conditions"].pop("sacroiliac-joint-pain")),
     "conditions.sacroiliac-joint-pain", "missing"),
    ("a condition the differential does not know", _edit(
        lambda d: d["conditions"].update(gout=d["conditions"]["hamstring-strain"])),
     "conditions.gout", "not a condition of the differential"),
    ("unknown citation", _edit(lambda d: _strain(d)["citations"].append("folklore")),
     "conditions.hamstring-strain.citations[4]", "unknown citation 'folklore'"),
    ("unknown citation in the emergency box", _edit(
        lambda d: d["emergency"]["citations"].insert(0, "hearsay")),
     "emergency.citations[0]", "unknown citation 'hearsay'"),
    ("missing drawing file", _edit(
        lambda d: _strain(d)["exercises"][0].update(drawing="ghost.svg")),
     "conditions.hamstring-strain.exercises[0].drawing", "no drawing 'ghost.svg'"),
    ("a drawing that is not an svg", _edit(
        lambda d: _strain(d)["exercises"][0].update(drawing="walking.png")),
     "conditions.hamstring-strain.exercises[0].drawing", ".svg"),
    ("a drawing outside the folder", _edit(
        lambda d: _strain(d)["exercises"][0].update(drawing="../walking.svg")),
     "conditions.hamstring-strain.exercises[0].drawing", "no folders"),
    ("wrong version", _edit(lambda d: d.update(version="1.0.1")), "version",
     "must carry their version"),
    ("an empty do list", _edit(lambda d: _strain(d).update(do=[])),
     "conditions.hamstring-strain.do", "Shorter than minimum length 1"),
    ("too many exercises", _edit(
        lambda d: _strain(d).update(exercises=_strain(d)["exercises"] * 2)),
     "conditions.hamstring-strain.exercises", "Longer than maximum length 3"),
    ("no emergency signs", _edit(lambda d: d["emergency"].update(signs=[])),
     "emergency.signs", "Shorter than minimum length 1"),
    ("false certainty", _edit(lambda d: _strain(d).update(what="You have a pulled hamstring.")),
     "conditions.hamstring-strain.what", "as certain"),
    ("spine_or_nerve not a boolean", _edit(lambda d: _strain(d).update(spine_or_nerve="maybe")),
     "conditions.hamstring-strain.spine_or_nerve", "Not a valid boolean"),
    ("a red flag without its words", _edit(lambda d: d["red_flags"].pop("serious-pathology")),
     "red_flags.serious-pathology", "missing"),
    ("words for a red flag that does not exist", _edit(
        lambda d: d["red_flags"].update(gout=d["red_flags"]["serious-pathology"])),
     "red_flags.gout", "not a red flag"),
    ("a red flag without 'go now' signs", _edit(
        lambda d: d["red_flags"]["proximal-hamstring-avulsion"].update(go_now=[])),
     "red_flags.proximal-hamstring-avulsion.go_now", "go now"),
    ("a red flag saying nothing is arranged", _edit(
        lambda d: d["red_flags"]["severe-motor-deficit"].update(arranged=[])),
     "red_flags.severe-motor-deficit.arranged", "Shorter than minimum length 1"),
    ("unknown citation for a red flag", _edit(
        lambda d: d["red_flags"]["cauda-equina-syndrome"]["citations"].append("rumour")),
     "red_flags.cauda-equina-syndrome.citations[2]", "unknown citation 'rumour'"),
    ("an urgency without its lead", _edit(lambda d: d["urgency"].pop("emergency")),
     "urgency.emergency", "missing"),
    ("an urgent handout that does not say what is arranged", _edit(
        lambda d: d["urgency"]["urgent"].pop("arranged_title")),
     "urgency.urgent.arranged_title", "what is being arranged"),
]


@pytest.mark.parametrize(("label", "corrupt", "place", "problem"), BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_a_broken_handout_file_stops_loading(tmp_path, label, corrupt, place, problem) -> None:
    error = knowledge_copies.load_error(tmp_path, corrupt)
    assert error.source == str(tmp_path / "mappings" / "decision" / "handouts.json"), str(error)
    assert error.path == place, str(error)
    assert problem in error.problem, str(error)


def test_a_missing_handout_file_stops_loading(tmp_path) -> None:
    shutil.copytree(DEFAULTS["QUESTIONNAIRES_DIR"], tmp_path / "questionnaires")
    shutil.copytree(MDIR, tmp_path / "mappings")
    (tmp_path / "mappings" / "decision" / "handouts.json").unlink()
    with pytest.raises(KnowledgeError, match="handouts.json: \\(root\\): cannot read"):
        knowledge.load(tmp_path / "questionnaires", tmp_path / "mappings")


def test_a_drawing_missing_from_the_folder_stops_loading(kb, tmp_path) -> None:
    """The loader checks the drawings folder it is given, not a fixed one."""
    shutil.copytree(knowledge.DRAWINGS_DIR, tmp_path / "exercises")
    (tmp_path / "exercises" / "clam.svg").unlink()
    with pytest.raises(KnowledgeError) as caught:
        handouts.load(HANDOUTS, kb.decision, tmp_path / "exercises")
    assert caught.value.path == "conditions.proximal-hamstring-tendinopathy.exercises[1].drawing"


# --- under a red flag ----------------------------------------------------------------

def test_the_red_flag_leads_say_go_now_or_within_days(kb) -> None:
    """The issue's words, exactly: the instruction a patient cannot misread."""
    assert kb.handouts.urgency["emergency"].lead == \
        "Go to the emergency department (A&E) now. Do not wait."
    assert kb.handouts.urgency["urgent"].lead == "You need to be seen within days."
    assert set(kb.handouts.red_flags) == {f.id for f in kb.decision.red_flags}


@pytest.mark.parametrize("flag", sorted(json.loads(HANDOUTS.read_text("utf-8"))["red_flags"]))
def test_each_red_flag_handout_reads_at_grade_8_and_never_delays(kb, flag) -> None:
    words = kb.handouts.red_flags[flag]
    level = next(f.urgency for f in kb.decision.red_flags if f.id == flag)
    lead = kb.handouts.urgency[level]
    text = handouts._passage([lead.lead, words.why, lead.signs_title, *words.go_now,
                              *words.arranged, *words.until_seen])
    grade = textstat.flesch_kincaid_grade(text)
    assert grade <= MAX_GRADE, f"{flag}: Flesch-Kincaid grade {grade} > {MAX_GRADE}"
    # why is one sentence; nothing suggests exercise, waiting or getting better by itself
    assert words.why.count(". ") == 0 and words.why.endswith(".")
    lowered = text.lower()
    for delay in ("exercise", "get better", "most people", "come back", "weeks to"):
        assert delay not in lowered, (flag, delay)
