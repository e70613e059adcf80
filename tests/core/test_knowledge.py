"""Start-up checks: the real data loads; a broken file stops start-up naming file and place."""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugin import create_app, knowledge
from plugin.config import DEFAULTS
from plugin.errors import KnowledgeError

QDIR, MDIR = Path(DEFAULTS["QUESTIONNAIRES_DIR"]), Path(DEFAULTS["MAPPINGS_DIR"])
Q_FILE = "questionnaires/posterior-thigh-exam.json"
M_FILE = "mappings/observations/posterior-thigh-exam.json"
#: Standard codes the data may use: each is listed as verified in shared/clinical.md §6.2.
VERIFIED = {
    "http://snomed.info/sct": {"7771000", "24028007", "51440002", "68367000", "69030007",
                               "1141985005", "30547004", "29836001", "449813001"},
    "http://loinc.org": {"72514-3"},
    "http://unitsofmeasure.org": {"deg", "s", "min", "wk", "d", "mo", "a"},
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation": {"POS", "NEG"},
    "http://terminology.hl7.org/CodeSystem/observation-category": {"exam", "survey"},
}


def test_the_real_data_loads(kb) -> None:
    assert set(kb.forms) == {"posterior-thigh-exam"}
    assert set(kb.code_systems) == {"exam-answers", "exam-tests"}


def test_every_answerable_linkid_is_mapped_or_deliberately_not(kb, form) -> None:
    mappings = kb.mappings_for(form)
    answerable = {i.link_id for i in form.answerable}
    assert answerable == set(mappings.by_link_id) | set(mappings.not_extracted)
    assert not set(mappings.by_link_id) & set(mappings.not_extracted)
    assert len(answerable) == 118  # the exam dictionary's item count


def test_every_code_is_verified_or_our_own(kb) -> None:
    own = {cs["url"]: {c["code"] for c in cs["concept"]} for cs in kb.code_systems.values()}
    text = json.dumps([f.resource for f in kb.forms.values()]) + (MDIR / "observations" /
                                                                 "posterior-thigh-exam.json").read_text()
    codings = re.findall(r'"system": "([^"]+)", "code": "([^"]+)"', text)
    assert codings
    for system, code in codings:
        if system == "http://hl7.org/fhir/questionnaire-item-control" or system.endswith("keyboardType"):
            continue  # rendering vocabularies of the FHIR/SDC specs
        allowed = own.get(system) or VERIFIED.get(system)
        assert allowed is not None, f"unknown code system {system}"
        assert code in allowed, f"{system}|{code} is neither verified nor ours"


def _q(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / Q_FILE
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return apply


def _m(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / M_FILE
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return apply


def _item(data: dict[str, Any], *path: int) -> dict[str, Any]:
    node = data
    for n in path:
        node = node["item"][n]
    return node


def _raw(root: Path) -> None:
    (root / Q_FILE).write_text('{"resourceType": "Questionnaire",\n  "id": }')


BROKEN = [
    ("invalid JSON", _raw, Q_FILE, "line 2 column"),
    ("duplicate linkId", _q(lambda d: _item(d, 1, 2).update(linkId="history.onset")), Q_FILE,
     "breaks que-2: linkIds must be unique"),
    ("choice without options", _q(lambda d: _item(d, 1, 1).pop("answerOption")), Q_FILE,
     "history.onset: a choice item needs answerOption"),
    ("minValue above maxValue", _q(lambda d: _item(d, 13, 0).update(extension=[
        {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 11},
        {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10}])),
     Q_FILE, "pain.current: minValue 11 > maxValue 10"),
    ("enableWhen to an unknown question", _q(lambda d: _item(d, 1, 2)["enableWhen"][0].update(
        question="history.nope")), Q_FILE, "enableWhen refers to unknown question 'history.nope'"),
    ("display item marked required", _q(lambda d: _item(d, 1, 3).update(
        type="display", required=True, code=None)), Q_FILE, "que-"),
    ("id differs from file name", _q(lambda d: d.update(id="other")), Q_FILE,
     "must equal the file name"),
    ("unknown answer code", _q(lambda d: _item(d, 1, 1)["answerOption"][1]["valueCoding"].update(
        code="slowly")), Q_FILE, "history.onset: code 'slowly' is not in"),
    ("unmapped linkId", _m(lambda d: d.update(observations=[
        o for o in d["observations"] if o["linkId"] != "pain.current"])), M_FILE,
     "pain.current: must be either mapped or listed in not_extracted"),
    ("code differs from item.code", _m(lambda d: d["observations"][0]["code"][0].update(
        code="other")), M_FILE, "code differs from the Questionnaire's item.code"),
    ("unknown key in a mapping", _m(lambda d: d["observations"][0].update(colour="red")), M_FILE,
     "observations[0].colour: Unknown field."),
    ("wrong category", _m(lambda d: d["observations"][0].update(category="exam")), M_FILE,
     "category exam but the Questionnaire says survey"),
    ("laterality against the linkId", _m(lambda d: next(
        o for o in d["observations"] if o["linkId"] == "slr.left.onset-angle").update(
        laterality="right")), M_FILE, "laterality right does not match the linkId"),
]


@pytest.mark.parametrize(("label", "corrupt", "file", "message"), BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_a_broken_file_stops_start_up_naming_file_and_place(tmp_path, label, corrupt, file,
                                                            message) -> None:
    shutil.copytree(QDIR, tmp_path / "questionnaires")
    shutil.copytree(MDIR, tmp_path / "mappings")
    corrupt(tmp_path)
    with pytest.raises(KnowledgeError) as caught:
        create_app({"TESTING": True, "QUESTIONNAIRES_DIR": str(tmp_path / "questionnaires"),
                    "MAPPINGS_DIR": str(tmp_path / "mappings")})
    text = str(caught.value)
    assert text.startswith(str(tmp_path / file)), text
    assert message in text, text


def test_loading_is_repeatable_and_frozen(kb) -> None:
    again = knowledge.load(QDIR, MDIR)
    assert again.forms["posterior-thigh-exam"].canonical == kb.forms["posterior-thigh-exam"].canonical
    with pytest.raises(TypeError):
        kb.forms["x"] = None  # type: ignore[index]
