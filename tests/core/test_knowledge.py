"""The knowledge base: the real data loads, keeps the exam dictionary's contract, uses
only verified or own codes, and a broken copy stops loading with a message that names
the file and the place inside it.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin import create_app, knowledge
from plugin.config import DEFAULTS
from tests.support import knowledge_copies
from plugin.core import mapping
from plugin.core.questionnaire import Condition, Quantity
from plugin.errors import KnowledgeError

QDIR, MDIR = Path(DEFAULTS["QUESTIONNAIRES_DIR"]), Path(DEFAULTS["MAPPINGS_DIR"])
Q_FILE = "questionnaires/posterior-thigh-exam.json"
M_FILE = "mappings/observations/posterior-thigh-exam.json"
CS_ANSWERS = "questionnaires/codesystems/exam-answers.json"
SD_ONE_STEP = "questionnaires/structuredefinitions/recorded-in-one-step.json"
CANONICAL = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
BASE = "http://posterior-thigh-exam.org/fhir"
SNOMED, LOINC, UCUM = "http://snomed.info/sct", "http://loinc.org", "http://unitsofmeasure.org"

# --- The exam dictionary (shared/exam-dictionary.md), written out by hand ------------

SIDES = ("left", "right")
NEG_POS = ("negative", "positive")
TENDERNESS = ("not-tender", "tender", "reproduces-familiar-pain")
SENSATION = ("normal", "reduced", "absent", "hyperaesthetic")
REFLEX = ("absent", "reduced", "normal", "brisk")
GROUPS = ("patient", "history", "red-flags", "inspection", "slr", "slump", "palpation",
          "sitting", "neuro", "hamstring-tests", "deep-gluteal-tests", "sij-tests", "hip-drop",
          "pain")
ANY_UNIT = object()


def _dictionary() -> dict[str, tuple[str, Any]]:
    """linkId -> (type, detail): integer (min, max, unit), choice (options, repeats),
    quantity (units, min, max), boolean None."""
    d: dict[str, tuple[str, Any]] = {"patient.age-years": ("integer", (0, 120, ANY_UNIT))}
    choice = lambda *o, repeats=False: ("choice", (o, repeats))  # noqa: E731
    integer = lambda lo, hi, unit=None: ("integer", (lo, hi, unit))  # noqa: E731
    boolean = ("boolean", None)
    d.update({
        "history.affected-side": choice("left", "right", "bilateral"),
        "history.onset": choice("sudden", "gradual"),
        "history.mechanism": choice("sprinting", "kicking", "forced-hip-flexion-knee-extended",
                                    "lifting-bending", "direct-blow", "none"),
        "history.pop": boolean,
        "history.duration": ("quantity", (("d", "wk", "mo"), Quantity(0, "wk"),
                                          Quantity(520, "wk"))),
        "history.pain-location": choice(
            "low-back", "sit-bone", "deep-buttock", "sij-region", "posterior-thigh-proximal",
            "posterior-thigh-mid", "posterior-thigh-distal", "below-knee", "foot", "lateral-hip",
            repeats=True),
        "history.leg-vs-back": choice("leg-worse", "back-worse", "equal", "no-back-pain"),
        "history.aggravating": choice("sitting", "running", "fast-or-uphill-running",
                                      "forward-bending", "hamstring-stretch",
                                      "cough-sneeze-strain", "walking-standing", repeats=True),
        "history.relieving": choice("sitting", "bending-forward", "standing-walking", "rest",
                                    "none", repeats=True),
        "history.paraesthesia": choice("none", "above-knee", "below-knee"),
        "history.subjective-weakness": boolean,
        "history.prior-hamstring-injuries": integer(0, 20),
        "history.gait-hip-drop": boolean,
        "history.pt-weeks": integer(0, 260, "wk"),
        "history.imaging": choice("none", "xray", "mri-lumbar", "mri-pelvis-hamstring",
                                  "ultrasound", repeats=True),
        "history.injections": choice("none", "epidural", "peritendinous-corticosteroid", "prp",
                                     "piriformis", "sij", repeats=True),
        "history.eswt": boolean,
    })
    for flag in ("saddle-numbness", "bladder-dysfunction", "bowel-incontinence",
                 "sexual-dysfunction", "bilateral-leg-symptoms", "progressive-weakness", "fever",
                 "cancer-history", "weight-loss", "significant-trauma", "immunosuppression-ivdu",
                 "night-pain"):
        d[f"red-flags.{flag}"] = boolean
    d["inspection.antalgic-gait"] = boolean
    for side in SIDES:
        d[f"inspection.ecchymosis.{side}"] = boolean
        d[f"slr.{side}.onset-angle"] = integer(0, 90, "deg")
        d[f"slr.{side}.response"] = choice("none", "hamstring-stretch-only", "buttock-pain",
                                           "leg-pain-above-knee", "leg-pain-below-knee")
        d[f"slr.{side}.sensitising"] = choice("not-done", "increased", "no-change", "decreased")
        d[f"slr.{side}.crossed-pain"] = boolean
        d[f"slump.{side}.response"] = choice("none", "stretch-only", "familiar-symptoms")
        d[f"slump.{side}.neck-release"] = choice("not-done", "eases", "no-change")
        d[f"slump.{side}.knee-extension-deficit"] = integer(0, 90, "deg")
        for site in ("ischial-tuberosity", "hamstring-proximal", "hamstring-mid",
                     "hamstring-distal", "sciatic-notch", "psis", "lumbar-spine",
                     "greater-trochanter"):
            d[f"palpation.{site}.{side}"] = choice(*TENDERNESS)
        d[f"palpation.defect.{side}"] = boolean
        for root in ("l4", "l5", "s1"):
            d[f"neuro.power.{root}.{side}"] = integer(0, 5)
            d[f"neuro.sensation.{root}.{side}"] = choice(*SENSATION)
        for reflex in ("knee", "ankle"):
            d[f"neuro.reflex.{reflex}.{side}"] = choice(*REFLEX)
        for test in ("puranen-orava", "bent-knee-stretch", "modified-bent-knee-stretch"):
            d[f"hamstring-tests.{test}.{side}"] = choice(*NEG_POS)
        d[f"hamstring-tests.resisted-knee-flexion.{side}"] = choice(
            "strong-painfree", "painful", "weak", "weak-painful")
        for test in ("fair", "seated-piriformis", "active-piriformis"):
            d[f"deep-gluteal-tests.{test}.{side}"] = choice(*NEG_POS)
        d[f"sij-tests.gaenslen.{side}"] = choice(*NEG_POS)
        d[f"sij-tests.fortin.{side}"] = boolean
        d[f"hip-drop.trendelenburg.{side}"] = choice(*NEG_POS)
        d[f"hip-drop.trendelenburg-hold.{side}"] = integer(0, 30, "s")
        d[f"hip-drop.single-leg-squat.{side}"] = choice("good", "fair", "poor")
    d.update({
        "sitting.effect": choice("aggravates", "relieves", "no-effect"),
        "sitting.tolerance-minutes": integer(0, 240, "min"),
        "sitting.pain-nrs": integer(0, 10),
        "sitting.location": choice("sit-bone", "deep-buttock", "low-back", "posterior-thigh",
                                   "below-knee"),
        "sitting.hard-surface-worse": boolean,
        "neuro.saddle-sensation": choice("normal", "reduced", "absent", "not-tested"),
        "sij-tests.distraction": choice(*NEG_POS),
        "sij-tests.thigh-thrust": choice(*NEG_POS),
        "sij-tests.compression": choice(*NEG_POS),
        "sij-tests.sacral-thrust": choice(*NEG_POS),
        "sij-tests.centralisation": boolean,
        "pain.current": integer(0, 10),
        "pain.worst-week": integer(0, 10),
    })
    return d


DICTIONARY = _dictionary()
ENABLE_WHEN = {
    "history.mechanism": (Condition("history.onset", "=", "sudden"),),
    "history.pop": (Condition("history.onset", "=", "sudden"),),
    "sitting.tolerance-minutes": (Condition("sitting.effect", "=", "aggravates"),),
}

# --- Standard codes the data may use: copied from shared/clinical.md §6.2 (verified) --

VERIFIED: dict[str, dict[str, tuple[str, ...]]] = {
    SNOMED: {
        # laterality
        "7771000": ("Left (qualifier value)",), "24028007": ("Right (qualifier value)",),
        "51440002": ("Right and left (qualifier value)",), "419161000": ("Unilateral left",),
        "419465000": ("Unilateral right",),
        # positive / negative for valueCodeableConcept
        "10828004": ("Positive",), "260385009": ("Negative",), "42425007": ("Equivocal",),
        "82334004": ("Indeterminate",),
        # body sites and qualifiers
        "69030007": ("Ischial tuberosity (structure)", "Ischial tuberosity"),
        "68367000": ("Thigh structure",), "255551008": ("Posterior (qualifier value)",),
        "261183002": ("Upper (qualifier value)",), "261122009": ("Lower (qualifier value)",),
        "255561001": ("Medial (qualifier value)",), "49370004": ("Lateral (qualifier value)",),
        "29836001": ("Hip region structure",), "85710004": ("Bone structure of ischium",),
        "182034009": ("Entire iliac crest",),
        "30547004": ("Structure of greater trochanter of femur",),
        "1141985005": ("Structure of lumbar vertebral column region",),
        "1144746008": ("Structure of sacral vertebral column region",),
        "77568009": ("Structure of back of trunk",),
        # findings and conditions
        "449813001": ("Numbness of saddle area (finding)",),
        "23056005": ("Sciatica (disorder)",),
        # conditions: the FSN, or the FSN without its semantic tag as a display
        "128196005": ("Lumbar radiculopathy (disorder)", "Lumbar radiculopathy"),
        "2415007": ("Lumbosacral radiculopathy (disorder)",),
        "311211000119105": ("Radiculopathy due to lumbar intervertebral disc disorder (disorder)",),
        "18347007": ("Spinal stenosis of lumbar region (disorder)", "Spinal stenosis of lumbar region"),
        "192970008": ("Cauda equina syndrome (disorder)", "Cauda equina syndrome"),
        "129139009": ("Disorder of lumbar spine (disorder)", "Disorder of lumbar spine"),
        # referrals (procedures)
        "308447003": ("Referral to physiotherapist (procedure)", "Referral to physiotherapist"),
        "308481009": ("Referral to orthopedic surgeon (procedure)", "Referral to orthopedic surgeon"),
        "263221003": ("Fracture of ischial tuberosity (disorder)",),
    },
    LOINC: {"72514-3": ("Pain severity - 0-10 verbal numeric rating [Score] - Reported",),
            # STarT Back: loinc.org/91349-1 (the panel and its items), /91350-9, /91351-7,
            # /91352-5 and its answer list LL3578-3 (accessed 2026-12-06); 91351-7 also in
            # AHRQ CDS Connect's pain management summary
            "91349-1": ("STarT Back Screening Tool panel",),
            "91340-0": ("My back pain has spread down my leg(s) at some time in the last 2 weeks",),
            "91341-8": ("I have had pain in the shoulder or neck at some time in the last "
                        "2 weeks",),
            "91342-6": ("I have only walked short distances because of my back pain",),
            "91343-4": ("In the last 2 weeks, I have dressed more slowly than usual because of "
                        "back pain",),
            "91344-2": ("It's not really safe for a person with a condition like mine to be "
                        "physically active",),
            "91345-9": ("Worrying thoughts have been going through my mind a lot of the time",),
            "91346-7": ("I feel that my back pain is terrible and it's never going to get any "
                        "better",),
            "91347-5": ("In general I have not enjoyed all the things I used to enjoy",),
            "91348-3": ("Overall, how bothersome has your back pain been in the last 2 weeks?",),
            "91350-9": ("Distress subscore [STarT Back]",),
            "91351-7": ("Total score [STarT Back]",),
            "91352-5": ("STarT Back Screening risk level",),
            "LA9194-7": ("Low",), "LA8982-6": ("Medium",), "LA9193-9": ("High",),
            "38208-5": ("Pain severity - Reported",),
            # imaging orders (ServiceRequest.code)
            "24968-0": ("MR Lumbar spine",), "24702-3": ("MR Thigh",),
            "26236-0": ("MR Thigh - left",), "26237-8": ("MR Thigh - right",),
            "26235-2": ("MR Thigh - bilateral",)},
    "http://terminology.hl7.org/CodeSystem/observation-category": {
        "exam": ("Exam",), "survey": ("Survey",)},
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation": {
        "POS": ("Positive",), "NEG": ("Negative",)},
}
#: UCUM units: §6.2 lists deg, s, cm and min. The dictionary's time units (history.duration
#: d/wk/mo, history.pt-weeks wk, patient.age-years a) and the follow-up's percent
#: (return-to-sport.strength-deficit %) are plain UCUM essence units that §6.2 does not
#: list yet; they are allowed here by name, nothing else is.
UCUM_UNITS = {"deg", "s", "cm", "min"} | {"d", "wk", "mo", "a"} | {"%"}
#: Rendering vocabularies of the FHIR core and SDC specs (item control, keyboard): not
#: clinical codes, used only inside rendering extensions.
RENDERING = {"http://hl7.org/fhir/questionnaire-item-control",
             "http://hl7.org/fhir/uv/sdc/CodeSystem/keyboardType"}


def codings(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Coding-like object (system + code) in a JSON tree, with its path."""
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and "code" in node:
            yield where, node
        for key, value in node.items():
            yield from codings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from codings(value, f"{where}[{n}]")


# --- The real data --------------------------------------------------------------------


def test_the_real_folders_load(kb, form) -> None:
    assert set(kb.forms) == {"posterior-thigh-exam", "posterior-thigh-follow-up"}
    assert (form.url, form.version) == (CANONICAL, "1.0.0")
    assert kb.form_for(CANONICAL) is form and kb.form_for(f"{CANONICAL}|1.0.0") is form
    assert kb.form_for(f"{CANONICAL}|9.9.9") is None
    assert set(kb.code_systems) == {"exam-answers", "exam-tests", "decision-support",
                                    "cds-override-reason", "outcome-measures"}
    # The outcome measures are the second kind of form: scored, not part of the exam.
    assert set(kb.instruments) == {"lefs", "psfs", "keele-start-back"}
    assert kb.instrument_for(f"{BASE}/Questionnaire/lefs|1.0.0") is kb.instruments["lefs"]
    assert kb.mappings_for(form).questionnaire == f"{CANONICAL}|1.0.0"


def test_loading_is_repeatable_and_frozen(kb) -> None:
    again = knowledge.load(QDIR, MDIR)
    assert set(again.forms) == set(kb.forms)
    assert again.mappings_for(again.forms["posterior-thigh-exam"]).by_link_id.keys() == \
        kb.mappings_for(kb.forms["posterior-thigh-exam"]).by_link_id.keys()
    with pytest.raises(TypeError):
        kb.forms["x"] = None  # type: ignore[index]


def test_the_groups_come_in_the_dictionary_order(form) -> None:
    assert form.top == GROUPS
    assert all(form.index[g].type == "group" and not form.index[g].required for g in GROUPS)


def test_the_answerable_items_are_exactly_the_dictionary(form) -> None:
    assert sorted(i.link_id for i in form.answerable) == sorted(DICTIONARY)
    for item in form.answerable:  # each sits in the group its linkId names
        assert list(form.ancestors(item.link_id))[-1].link_id == item.link_id.split(".")[0]


@pytest.mark.parametrize("link_id", sorted(DICTIONARY))
def test_each_item_has_the_dictionary_type_range_and_options(form, link_id) -> None:
    item = form.index[link_id]
    type_, detail = DICTIONARY[link_id]
    assert item.type == type_
    if type_ == "integer":
        low, high, unit = detail
        assert (item.min_value, item.max_value) == (low, high)
        if unit is not ANY_UNIT:
            assert (item.unit or {}).get("code") == unit
    elif type_ == "choice":
        options, repeats = detail
        assert tuple(o.code for o in item.options) == options
        assert item.repeats is repeats
    elif type_ == "quantity":
        units, low, high = detail
        assert (item.unit_options, item.min_quantity, item.max_quantity) == (units, low, high)
    assert item.enable_when == ENABLE_WHEN.get(link_id, ())
    assert not item.required  # every section is optional


def test_every_answerable_linkid_is_mapped_xor_not_extracted(kb, form) -> None:
    mappings = kb.mappings_for(form)
    answerable = {i.link_id for i in form.answerable}
    assert set(mappings.by_link_id) | set(mappings.not_extracted) == answerable
    assert not set(mappings.by_link_id) & set(mappings.not_extracted)
    assert all(len(reason) >= 10 for reason in mappings.not_extracted.values())


def test_every_sided_observation_carries_its_side(kb, form) -> None:
    for link_id, m in kb.mappings_for(form).by_link_id.items():
        sides = [part for part in link_id.split(".") if part in SIDES]
        assert m.laterality == (sides[0] if sides else None), link_id
        if m.laterality:
            assert m.body_site is not None, link_id


@pytest.mark.parametrize(("link_id", "system", "code"), [
    ("pain.current", LOINC, "72514-3"),
    ("pain.worst-week", LOINC, "72514-3"),
    ("sitting.pain-nrs", LOINC, "72514-3"),
    ("red-flags.saddle-numbness", SNOMED, "449813001"),
])
def test_standard_codes_sit_on_the_observation_code(kb, form, link_id, system, code) -> None:
    m = kb.mappings_for(form).by_link_id[link_id]
    assert {"system": system, "code": code} in [
        {"system": c["system"], "code": c["code"]} for c in m.codes]
    assert m.codes[0]["system"] == f"{BASE}/CodeSystem/exam-tests"


@pytest.mark.parametrize(("site", "code"), [
    ("ischial-tuberosity", "69030007"), ("hamstring-proximal", "68367000"),
    ("hamstring-mid", "68367000"), ("hamstring-distal", "68367000"),
    ("lumbar-spine", "1141985005"), ("greater-trochanter", "30547004"),
])
def test_palpation_body_sites_use_the_verified_structures(kb, form, site, code) -> None:
    for side in SIDES:
        body_site = kb.mappings_for(form).by_link_id[f"palpation.{site}.{side}"].body_site
        assert [c["code"] for c in body_site["coding"]] == [code]


def test_laterality_answers_offer_the_verified_snomed_codes(form) -> None:
    item = form.index["history.affected-side"]
    assert [(o.code, o.coding["system"], o.coding["code"]) for o in item.options] == [
        ("left", SNOMED, "7771000"), ("right", SNOMED, "24028007"),
        ("bilateral", SNOMED, "51440002")]
    assert [c["code"] for c in (mapping.LATERALITY["left"], mapping.LATERALITY["right"])] == [
        "7771000", "24028007"]


def test_every_code_is_our_own_or_verified(kb, form) -> None:
    own = {cs["url"]: {c["code"]: c.get("display") for c in cs["concept"]}
           for cs in kb.code_systems.values()}
    sources = {Q_FILE: form.resource, M_FILE: json.loads((MDIR / "observations" /
                                                          "posterior-thigh-exam.json").read_text()),
               "mapping.LATERALITY": dict(mapping.LATERALITY)}
    sources.update({f"codesystems/{k}": v for k, v in kb.code_systems.items()})
    sources.update({f"{k}.json": dict(v.resource) for k, v in kb.instruments.items()})
    seen = set()
    for name, data in sources.items():
        for where, coding in codings(data, name):
            system, code, display = coding["system"], coding["code"], coding.get("display")
            seen.add(system)
            if system.startswith(BASE):
                assert code in own.get(system, {}), f"{where}: {system}|{code} is not ours"
                if display is not None:
                    assert display == own[system][code], f"{where}: display of {code}"
            elif system == UCUM:
                assert code in UCUM_UNITS, f"{where}: UCUM {code} is not an allowed unit"
            elif system in RENDERING:
                assert ".extension" in where, f"{where}: {system} outside an extension"
            else:
                assert code in VERIFIED.get(system, {}), f"{where}: {system}|{code} unverified"
                if display is not None:
                    assert display in VERIFIED[system][code], f"{where}: {code} {display!r}"
    assert {SNOMED, LOINC, UCUM, f"{BASE}/CodeSystem/exam-tests",
            f"{BASE}/CodeSystem/exam-answers"} <= seen


def test_the_standard_codes_in_use_are_the_reviewed_ones(kb, form) -> None:
    """A new standard code in the data is a deliberate change: review it against §6.2."""
    data = [form.resource, json.loads((MDIR / "observations" /
                                       "posterior-thigh-exam.json").read_text())]
    used = {(c["system"], c["code"]) for d in data for _, c in codings(d, "")
            if c["system"] in (SNOMED, LOINC)}
    assert used == {(LOINC, "72514-3")} | {(SNOMED, c) for c in (
        "449813001", "7771000", "24028007", "51440002", "68367000", "69030007", "1141985005",
        "30547004", "29836001")}


# --- Broken copies ----------------------------------------------------------------------


def _item(node: dict[str, Any], link_id: str) -> dict[str, Any]:
    for child in node.get("item", []):
        if child["linkId"] == link_id:
            return child
        try:
            return _item(child, link_id)
        except KeyError:
            continue
    raise KeyError(link_id)


def _edit(file: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / file
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return apply


def _write(file: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / file).write_text(text, encoding="utf-8")


def _q(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return _edit(Q_FILE, change)


def _m(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return _edit(M_FILE, change)


def _mapping(data: dict[str, Any], link_id: str) -> dict[str, Any]:
    return next(o for o in data["observations"] if o["linkId"] == link_id)


def _min_value(data: dict[str, Any], link_id: str, value: int) -> None:
    for ext in _item(data, link_id)["extension"]:
        if ext["url"] == "http://hl7.org/fhir/StructureDefinition/minValue":
            ext["valueInteger"] = value


def _duplicate_concept(data: dict[str, Any]) -> None:
    data["concept"].append(dict(data["concept"][3]))
    data["count"] = len(data["concept"])


BROKEN = [
    ("invalid JSON in the Questionnaire",
     _write(Q_FILE, '{"resourceType": "Questionnaire",\n  "id": }'),
     Q_FILE, "line 2 column 9", "invalid JSON"),
    ("invalid JSON in the mappings", _write(M_FILE, '{\n  "version": "1.0.0",\n}'),
     M_FILE, "line 3 column 1", "invalid JSON"),
    ("duplicate linkId", _q(lambda d: _item(d, "history.pop").update(linkId="history.onset")),
     Q_FILE, "item[1].item[3].linkId", "duplicate linkId 'history.onset'"),
    ("choice item without options", _q(lambda d: _item(d, "history.onset").pop("answerOption")),
     Q_FILE, "item[1].item[1]", "history.onset: a choice item needs answerOption"),
    ("minValue above maxValue", _q(lambda d: _min_value(d, "pain.current", 11)),
     Q_FILE, "item[13].item[0]", "pain.current: minValue 11 > maxValue 10"),
    ("enableWhen to an unknown question", _q(lambda d: _item(d, "history.pop")["enableWhen"][0]
                                             .update(question="history.nope")),
     Q_FILE, "history.pop", "enableWhen refers to unknown question 'history.nope'"),
    ("enableWhen to a group", _q(lambda d: _item(d, "history.pop")["enableWhen"][0]
                                 .update(question="history")),
     Q_FILE, "history.pop", "enableWhen refers to unknown question 'history'"),
    ("enableWhen answer that is not an option",
     _q(lambda d: _item(d, "history.pop")["enableWhen"][0]["answerCoding"].update(code="fast")),
     Q_FILE, "history.pop", "enableWhen answer 'fast' is not an option of history.onset"),
    ("Questionnaire id differs from its file name", _q(lambda d: d.update(id="other")),
     Q_FILE, "id", "must equal the file name 'posterior-thigh-exam'"),
    ("unsupported item type", _q(lambda d: _item(d, "pain.current").update(type="slider")),
     Q_FILE, "item[13].item[0].type", "pain.current: unsupported item type 'slider'"),
    ("answer code missing from the CodeSystem", _q(lambda d: _item(d, "history.onset")[
        "answerOption"][1]["valueCoding"].update(code="slowly")),
     Q_FILE, "history.onset", "code 'slowly' is not in"),
    ("answer display differs from the CodeSystem", _q(lambda d: _item(d, "history.onset")[
        "answerOption"][1]["valueCoding"].update(display="Slowly")),
     Q_FILE, "history.onset", "display of 'gradual' differs"),
    ("duplicate code in a CodeSystem", _edit(CS_ANSWERS, _duplicate_concept),
     CS_ANSWERS, "concept", "duplicate codes"),
    ("unmapped linkId", _m(lambda d: d.update(observations=[
        o for o in d["observations"] if o["linkId"] != "pain.current"])),
     M_FILE, "pain.current", "must be either mapped or listed in not_extracted"),
    ("mapped and also not extracted", _m(lambda d: d["not_extracted"].append(
        {"linkId": "pain.current", "reason": "listed twice by mistake"})),
     M_FILE, "pain.current", "must be either mapped or listed in not_extracted"),
    ("mapping of a linkId the Questionnaire lacks", _m(lambda d: d["not_extracted"].append(
        {"linkId": "slr.left.angle", "reason": "a linkId that does not exist"})),
     M_FILE, "slr.left.angle", "not an answerable linkId of the Questionnaire"),
    ("mapping code differs from item.code", _m(lambda d: _mapping(d, "slr.left.onset-angle")[
        "code"][0].update(code="slr.angle")),
     M_FILE, "slr.left.onset-angle", "code differs from the Questionnaire's item.code"),
    ("unknown key in the mapping file", _m(lambda d: d.update(colour="red")),
     M_FILE, "colour", "Unknown field."),
    ("unknown key in a mapping", _m(lambda d: d["observations"][0].update(colour="red")),
     M_FILE, "observations[0].colour", "Unknown field."),
    ("category differs from the Questionnaire", _m(lambda d: _mapping(d, "pain.current").update(
        category="exam")),
     M_FILE, "pain.current", "category exam but the Questionnaire says survey"),
    ("laterality against the linkId", _m(lambda d: _mapping(d, "slr.left.onset-angle").update(
        laterality="right")),
     M_FILE, "slr.left.onset-angle", "laterality right does not match the linkId"),
    ("value type that does not fit the item", _m(lambda d: _mapping(d, "pain.current").update(
        value="boolean")),
     M_FILE, "pain.current", "value boolean does not fit item type integer"),
    ("mappings for another Questionnaire version", _m(lambda d: d.update(
        questionnaire=f"{CANONICAL}|2.0.0")),
     M_FILE, "questionnaire", f"maps {CANONICAL}|2.0.0, loaded {CANONICAL}|1.0.0"),
    ("extension definition under another url", _edit(SD_ONE_STEP, lambda d: d.update(
        url="http://example.org/StructureDefinition/recorded-in-one-step")),
     SD_ONE_STEP, "url", f"must be {BASE}/StructureDefinition/recorded-in-one-step"),
    ("extension definition fixing another url", _edit(SD_ONE_STEP, lambda d: d["differential"][
        "element"][2].update(fixedUri=f"{BASE}/StructureDefinition/other")),
     SD_ONE_STEP, "differential", "Extension.url must be fixed to"),
    ("mapping file missing", lambda root: (root / M_FILE).unlink(),
     M_FILE, "", "missing: every Questionnaire needs observation mappings"),
]


@pytest.fixture()
def broken_copy(tmp_path) -> Path:
    return knowledge_copies.copy(tmp_path)


@pytest.mark.parametrize(("label", "corrupt", "file", "place", "problem"), BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_a_broken_copy_stops_loading_naming_file_and_place(broken_copy, label, corrupt, file,
                                                           place, problem) -> None:
    corrupt(broken_copy)
    with pytest.raises(KnowledgeError) as caught:
        knowledge.load(broken_copy / "questionnaires", broken_copy / "mappings")
    error = caught.value
    assert (error.source, error.path) == (str(broken_copy / file), place), str(error)
    assert problem in error.problem, str(error)
    assert str(error).startswith(f"{broken_copy / file}: {place or '(root)'}: ")


def test_an_untouched_copy_loads(broken_copy) -> None:
    kb = knowledge.load(broken_copy / "questionnaires", broken_copy / "mappings")
    assert set(kb.forms) == {"posterior-thigh-exam", "posterior-thigh-follow-up"}


def test_the_app_refuses_to_start_on_a_broken_copy(broken_copy) -> None:
    _write(Q_FILE, "{")(broken_copy)
    with pytest.raises(KnowledgeError) as caught:
        create_app({"TESTING": True, "QUESTIONNAIRES_DIR": str(broken_copy / "questionnaires"),
                    "MAPPINGS_DIR": str(broken_copy / "mappings")})
    assert caught.value.source == str(broken_copy / Q_FILE)
