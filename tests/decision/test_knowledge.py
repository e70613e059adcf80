"""The decision knowledge: complete against the exam dictionary's decision vocabulary,
every rule cited and reachable, only verified standard codes, and a broken copy stops
start-up naming the file and the place inside it."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from tests.support import knowledge_copies
from plugin.errors import KnowledgeError
from tests.core.test_knowledge import LOINC, SNOMED, VERIFIED, codings

MDIR = Path(DEFAULTS["MAPPINGS_DIR"])
DDIR = MDIR / "decision"
FILES = ("citations", "findings", "red-flags", "differential", "referrals")


def _raw(name: str) -> dict[str, Any]:
    return json.loads((DDIR / f"{name}.json").read_text(encoding="utf-8"))


def _vocabulary() -> dict[str, set[str]]:
    """The decision vocabulary of shared/exam-dictionary.md, written out by hand (the
    repository does not ship shared/, so the contract is copied here on purpose)."""
    return {
        "conditions": {"proximal-hamstring-tendinopathy", "hamstring-strain",
                       "proximal-hamstring-avulsion", "lumbar-radiculopathy",
                       "lumbar-spinal-stenosis", "deep-gluteal-syndrome",
                       "sacroiliac-joint-pain", "hamstring-syndrome",
                       "neural-mechanosensitivity", "referred-lumbar-pain"},
        "emergencies": {"cauda-equina-syndrome", "serious-pathology"},
        "factors": {"hip-drop"},
        "urgency": {"emergency", "urgent", "routine"},
        "services": {"emergency-department", "urgent-spine-assessment",
                     "urgent-orthopaedic-surgeon", "physiotherapy", "mri-lumbar-spine",
                     "mri-pelvis-hamstring", "injection-consultation", "spine-surgeon",
                     "sports-medicine"},
    }


def _refs(node: Any, kind: str) -> set[str]:
    found = set()
    if isinstance(node, dict):
        if isinstance(node.get(kind), str):
            found.add(node[kind])
        for value in node.values():
            found |= _refs(value, kind)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value, kind)
    return found


def test_the_vocabulary_is_the_dictionarys(kb) -> None:
    vocabulary = _vocabulary()
    decision = kb.decision
    assert {c.id for c in decision.conditions} == vocabulary["conditions"]
    assert vocabulary["emergencies"] <= {r.id for r in decision.red_flags}
    assert vocabulary["factors"] == {"hip-drop"}
    # issue 19: a factor from the patient's own answers (STarT Back high risk), which the
    # exam dictionary does not list yet (proposed there)
    assert {f.id for f in decision.factors} == vocabulary["factors"] | {"psychosocial-risk"}
    assert set(decision.services) == vocabulary["services"]
    assert {r.urgency for r in decision.red_flags} | {"routine"} == vocabulary["urgency"]


def test_one_release_version_reported_by_every_assessment(kb) -> None:
    assert {_raw(name)["version"] for name in FILES} == {kb.decision.version}
    assert kb.code_systems["decision-support"]["version"] == kb.decision.version


def test_every_rule_has_a_rationale_and_a_known_citation(kb) -> None:
    citations = {c["id"] for c in _raw("citations")["citations"]}
    rules = (_raw("findings")["findings"] + _raw("red-flags")["red_flags"]
             + _raw("differential")["conditions"]
             + [e for c in _raw("differential")["conditions"] for e in c["evidence"]]
             + _raw("referrals")["rules"])
    for rule in rules:
        assert len(rule["rationale"]) >= 5 and rule["citation"], rule
        assert set(rule["citation"]) <= citations, rule


def test_every_citation_and_every_finding_is_used() -> None:
    data = {name: _raw(name) for name in FILES[1:]}
    cited = set()
    for name, content in data.items():
        for key in ("citation",):
            cited |= {c for node in _walk(content) if isinstance(node, dict)
                      for c in node.get(key, []) if isinstance(node.get(key), list)}
    assert cited == {c["id"] for c in _raw("citations")["citations"]}
    used = set()
    for content in data.values():
        used |= _refs(content, "finding") | _refs(content, "only_if") | _refs(content, "unless")
        used |= {k for c in content.get("conditions", []) for k in c["key_findings"]}
    defined = {f["id"] for f in data["findings"]["findings"]}
    assert defined - used == set(), "findings no rule uses"


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_every_red_flag_question_raises_a_red_flag(kb, form) -> None:
    questions = {i.link_id for i in form.answerable if i.link_id.startswith("red-flags.")}
    used = set()
    for finding in _raw("findings")["findings"]:
        used |= {a for a in _refs(finding["when"], "answer") if a.startswith("red-flags.")}
    assert used == questions
    flag_findings = set().union(*(_refs(r["when"], "finding") for r in _raw("red-flags")["red_flags"]))
    for finding in _raw("findings")["findings"]:
        if _refs(finding["when"], "answer") & questions:
            assert finding["id"] in flag_findings, finding["id"]


def test_every_service_can_be_suggested_and_every_condition_has_a_pt_focus(kb) -> None:
    decision = kb.decision
    assert {r.service for r in decision.rules} == set(decision.services)
    # a suspected avulsion goes to the surgeon first; every other condition gets PT content
    assert set(decision.pt_focus) == ({c.id for c in decision.conditions}
                                      - {"proximal-hamstring-avulsion"}) \
        | {f.id for f in decision.factors}


def test_every_configured_threshold_is_used_by_a_rule() -> None:
    text = "".join((DDIR / f"{name}.json").read_text(encoding="utf-8") for name in FILES)
    for name in DEFAULTS["DECISION_THRESHOLDS"]:
        assert name in text, name


def test_standard_codes_are_verified_ones() -> None:
    seen = set()
    for name in FILES:
        for where, coding in codings(_raw(name), name):
            if coding["system"] in (SNOMED, LOINC):
                seen.add(coding["code"])
                assert coding["code"] in VERIFIED[coding["system"]], where
                assert coding["display"] in VERIFIED[coding["system"]][coding["code"]], where
    assert {"128196005", "18347007", "192970008", "308447003", "24968-0"} <= seen
    # 55146009 is sacroiliitis, not mechanical SIJ pain (clinical.md 3.7): never used
    assert "55146009" not in seen


def test_the_decision_codesystem_publishes_every_code_emitted(kb) -> None:
    cs = kb.code_systems["decision-support"]
    codes = {c["code"] for c in cs["concept"]}
    assert {c.id for c in kb.decision.conditions} | set(kb.decision.services) \
        | {r.id for r in kb.decision.red_flags} <= codes
    assert cs["count"] == len(cs["concept"])


# --- broken copies -----------------------------------------------------------------------

def _edit(name: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        path = root / "mappings" / "decision" / f"{name}.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")
    return corrupt


def _finding(data: dict[str, Any], id_: str) -> dict[str, Any]:
    return next(f for f in data["findings"] if f["id"] == id_)


def _cited(data: dict[str, Any], id_: str) -> dict[str, Any]:
    return next(c for c in data["citations"] if c["id"] == id_)


def _rule(data: dict[str, Any], id_: str) -> dict[str, Any]:
    return next(r for r in data["rules"] if r["id"] == id_)


def _condition(data: dict[str, Any], id_: str) -> dict[str, Any]:
    return next(c for c in data["conditions"] if c["id"] == id_)


BROKEN = [
    ("unknown linkId", _edit("findings", lambda d: _finding(d, "fever")["when"].update(
        answer="red-flags.feverish")), "findings", "findings[8].when.answer", "not a question"),
    ("answer code not an option", _edit("findings", lambda d: _finding(d, "sudden-onset")["when"].update(
        {"is": "abrupt"})), "findings", "findings[14].when.is", "'abrupt' is not an answer option"),
    ("unknown threshold", _edit("findings", lambda d: _finding(d, "conservative-care-failed")["when"].update(
        at_least={"threshold": "NOPE"})), "findings", None, "unknown threshold 'NOPE'"),
    ("side placeholder in an unsided finding", _edit("findings", lambda d: _finding(d, "fever").update(
        when={"answer": "slr.{side}.crossed-pain", "equals": True})), "findings", "findings[8].when.answer",
     "{side}/{other} only in a sided finding"),
    ("a cycle of findings", _edit("findings", lambda d: _finding(d, "slr-positive").update(
        when={"finding": "neural-provocation-positive"})), "findings", None, "cycle"),
    ("unknown finding in a condition", _edit("differential", lambda d: d["conditions"][0]["evidence"][0].update(
        finding="ghost")), "differential", "conditions[0].evidence[0].finding", "unknown finding 'ghost'"),
    ("an LR without saying whether it applies", _edit("differential", lambda d: d["conditions"][0]["evidence"][1].pop(
        "applies")), "differential", "conditions[0].evidence[1].applies", "direct' or 'capped"),
    ("a weight beyond the cap", _edit("differential", lambda d: d["conditions"][0]["evidence"][0].update(
        weight=9)), "differential", "conditions[0].evidence[0].weight", "within"),
    ("unknown citation", _edit("red-flags", lambda d: d["red_flags"][0]["citation"].append("folklore")),
     "red-flags", "red_flags[0].citation", "unknown citation 'folklore'"),
    ("a rule for an unknown service", _edit("referrals", lambda d: d["rules"][0].update(service="spa")),
     "referrals", "rules[0].service", "unknown service 'spa'"),
    ("a rule naming an unknown condition", _edit("referrals", lambda d: d["rules"][9].update(
        when={"condition": "gout"})), "referrals", "rules[9].when", "unknown condition 'gout'"),
    ("versions out of step", _edit("referrals", lambda d: d.update(version="1.0.1")), None, "version",
     "share one version"),
    ("a rule without a citation", _edit("referrals", lambda d: d["rules"][0].update(citation=[])),
     "referrals", "rules[0].citation", "Shorter than minimum length 1"),
    ("a placeholder that is not a threshold", _edit("referrals", lambda d: d["rules"][0].update(
        timing="within {SOON} hours")), "referrals", "rules[0].timing", "unknown threshold"),
    ("a red flag that waits for a referral", _edit("red-flags", lambda d: d["red_flags"][0].update(
        when={"referral": "spine-surgeon"})), "red-flags", "red_flags[0].when",
     "'referral' cannot be referred to here"),
    ("a rule that follows an unknown service", _edit("referrals", lambda d: d["rules"][0].update(
        when={"referral": "spa"})), "referrals", "rules[0].when", "unknown referral 'spa'"),
    ("referrals that follow each other", _edit("referrals", lambda d: _rule(d, "radicular-surgeon").update(
        when={"referral": "mri-lumbar-spine"})), "referrals", None, "itself follows a referral"),
    ("an 'instead' that reuses a rule id", _edit("referrals", lambda d: _rule(d, "physiotherapy")[
        "instead"][0].update(id="physiotherapy")), "referrals", None, "duplicate id 'physiotherapy'"),
    ("an 'instead' without a citation", _edit("referrals", lambda d: _rule(d, "physiotherapy")[
        "instead"][0].update(citation=[])), "referrals", None, "Shorter than minimum length 1"),
    ("a cluster that is not a finding", _edit("differential", lambda d: d["conditions"][0].update(
        cluster="ghost")), "differential", "conditions[0].cluster", "unknown finding 'ghost'"),
    ("an exclusion without a margin", _edit("differential", lambda d: _condition(
        d, "deep-gluteal-syndrome")["exclusion"].pop("margin")), "differential", None,
     "Missing data for required field"),
    ("an exclusion margin of zero", _edit("differential", lambda d: _condition(
        d, "deep-gluteal-syndrome")["exclusion"].update(margin=0)), "differential", None,
     "greater than 0"),
    # Sources are publications or guidelines; a referral cites sources about its condition.
    ("a policy cited as a source", _edit("citations", lambda d: _cited(d, "goom-2016").update(
        kind="policy")), "citations", None, "must be one of: publication, guideline"),
    ("a source about an unknown condition", _edit("citations", lambda d: _cited(d, "goom-2016").update(
        about=["gout"]), ), "citations", "goom-2016", "unknown condition or red flag 'gout'"),
    ("a referral source that says nothing of what it is about", _edit(
        "citations", lambda d: _cited(d, "goom-2016").pop("about")), "referrals", None,
     "'goom-2016' is cited by a referral but has no 'about'"),
    ("a referral citing a source about another condition", _edit(
        "referrals", lambda d: _rule(d, "stenosis-surgeon")["citation"].append("goom-2016")),
     "referrals", None, "none of which rule 'stenosis-surgeon' names"),
    ("an 'instead' citing a source about another condition", _edit(
        "referrals", lambda d: _rule(d, "physiotherapy")["instead"][0]["citation"].append(
            "bmj-ces")), "referrals", "rules[8].instead[0].citation",
     "none of which rule 'physiotherapy' names"),
    ("an 'instead' without a source about a condition its rule names", _edit(
        "referrals", lambda d: _rule(d, "physiotherapy")["instead"][0]["citation"].remove(
            "young-2008")), "referrals", None, "no source about 'hamstring-syndrome'"),
    ("a condition a referral names without a source about it", _edit(
        "referrals", lambda d: _rule(d, "physiotherapy")["citation"].remove("young-2008")),
     "referrals", None, "no source about 'hamstring-syndrome'"),
    # Reasons read as found: a finding counted when absent says how it reads then.
    ("a finding counted when absent without its wording", _edit(
        "findings", lambda d: _finding(d, "puranen-orava-positive").pop("absent_display")),
     "findings", "puranen-orava-positive", "has no 'absent_display'"),
    ("a key finding without the test that assesses it", _edit(
        "findings", lambda d: _finding(d, "gradual-onset").pop("test")),
     "findings", "gradual-onset", "has no 'test'"),
]


@pytest.mark.parametrize(("label", "corrupt", "file", "place", "problem"), BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_a_broken_decision_file_stops_loading(tmp_path, label, corrupt, file, place, problem) -> None:
    error = knowledge_copies.load_error(tmp_path, corrupt)
    decision = tmp_path / "mappings" / "decision"
    assert error.source == (str(decision / f"{file}.json") if file else str(decision)), str(error)
    if place is not None:
        assert error.path == place, str(error)
    assert problem in error.problem, str(error)


def test_bad_thresholds_stop_loading() -> None:
    with pytest.raises(KnowledgeError, match="positive number"):
        knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], MDIR,
                       {**DEFAULTS["DECISION_THRESHOLDS"], "CONSERVATIVE_CARE_WEEKS": -1})
    with pytest.raises(KnowledgeError, match="unknown threshold"):
        knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], MDIR, {"CONSERVATIVE_CARE_WEEKS": 6})
