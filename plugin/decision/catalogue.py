"""The decision knowledge (``mappings/decision/*.json``), checked and frozen at start-up.

Five files, one release: citations, findings, red flags, the differential and the
referral rules all carry the same ``version``, which every Assessment reports. Each file
is shape-checked (marshmallow), every predicate is compiled against the Questionnaire
(linkIds, answer codes, thresholds), and the files are cross-checked: every finding,
condition, red flag, service and citation a rule names exists, and findings have no
cycles. A mistake stops start-up with the file and the place inside it.
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..core.mapping import CodingSchema, first_error
from ..core.questionnaire import Form
from ..datafiles import read_json
from ..errors import KnowledgeError
from . import course
from . import predicates as p

FILES = ("citations", "findings", "red-flags", "differential", "referrals")
URGENCIES = ("emergency", "urgent")
#: FHIR ServiceRequest priorities, most pressing first.
PRIORITIES = ("stat", "urgent", "routine")
#: What a cited source may be. The project's own policies (how evidence is weighted) are
#: documented in mappings/README.md and the README, never cited as a source.
SOURCE_KINDS = ("publication", "guideline")
_ID = validate.Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$", error="must be a lower-kebab id")


def _text(min_length: int = 1, **kw: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=min_length), **kw)


def _cites() -> fields.List:
    return fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Citation(_Strict):
    id = fields.String(required=True, validate=_ID)
    kind = fields.String(required=True, validate=validate.OneOf(
        SOURCE_KINDS, error="must be one of: {choices} (a project policy is documented in "
                            "mappings/README.md, not cited as a source)"))
    evidence = fields.String(required=True, validate=validate.OneOf(("verified", "secondary", "expert")))
    about = fields.List(fields.String(validate=_ID), validate=validate.Length(min=1))
    text = _text(20, required=True)


class _Finding(_Strict):
    id = fields.String(required=True, validate=_ID)
    display = _text(required=True)
    absent_display = _text()
    test = _text()
    sided = fields.Boolean(required=True)
    when = fields.Raw(required=True)
    rationale = _text(10, required=True)
    citation = _cites()


class _RedFlag(_Strict):
    id = fields.String(required=True, validate=_ID)
    display = _text(required=True)
    urgency = fields.String(required=True, validate=validate.OneOf(URGENCIES))
    code = fields.List(fields.Nested(CodingSchema))
    when = fields.Raw(required=True)
    action = _text(10, required=True)
    rationale = _text(10, required=True)
    citation = _cites()


class _Evidence(_Strict):
    finding = fields.String(required=True)
    when = fields.String(load_default="present", validate=validate.OneOf(("present", "absent")))
    lr = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    applies = fields.String(validate=validate.OneOf(("direct", "capped")))
    weight = fields.Float()
    group = fields.String(validate=_ID)
    only_if = fields.String()
    unless = fields.String()
    rationale = _text(5, required=True)
    citation = _cites()


class _Exclusion(_Strict):
    margin = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    rationale = _text(10, required=True)
    citation = _cites()


class _Condition(_Strict):
    id = fields.String(required=True, validate=_ID)
    display = _text(required=True)
    code = fields.List(fields.Nested(CodingSchema))
    cluster = fields.String()
    exclusion = fields.Nested(_Exclusion)
    key_findings = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    evidence = fields.List(fields.Nested(_Evidence), required=True, validate=validate.Length(min=1))
    rationale = _text(10, required=True)
    citation = _cites()


class _Band(_Strict):
    band = fields.String(required=True, validate=_ID)
    at_least = fields.Float()
    above = fields.Float()


class _Scoring(_Strict):
    cap = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    direct_cap = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    weight_cap = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    bands = fields.List(fields.Nested(_Band), required=True, validate=validate.Length(min=1))
    confidence = fields.List(fields.Nested(_Band), required=True)
    below_confidence = fields.String(required=True, validate=_ID)
    rationale = _text(10, required=True)
    citation = _cites()


class _Factor(_Strict):
    id = fields.String(required=True, validate=_ID)
    display = _text(required=True)
    finding = fields.String(required=True)
    note = _text(10, required=True)
    rationale = _text(10, required=True)
    citation = _cites()


class _Caveat(_Strict):
    id = fields.String(required=True, validate=_ID)
    when = fields.Raw(required=True)
    text = _text(10, required=True)
    citation = _cites()


class _Service(_Strict):
    id = fields.String(required=True, validate=_ID)
    display = _text(required=True)
    category = fields.String(required=True, validate=validate.OneOf(("referral", "imaging")))
    code = fields.List(fields.Nested(CodingSchema))
    code_by_side = fields.Dict(keys=fields.String(validate=validate.OneOf(("left", "right", "bilateral"))),
                               values=fields.List(fields.Nested(CodingSchema)))
    note = _text(10)


class _Instead(_Strict):
    id = fields.String(required=True, validate=_ID)
    when = fields.Raw(required=True)
    reason = _text(10, required=True)
    timing = _text(3, required=True)
    rationale = _text(10, required=True)
    citation = _cites()


class _Rule(_Strict):
    id = fields.String(required=True, validate=_ID)
    service = fields.String(required=True)
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    when = fields.Raw(required=True)
    reason = _text(10, required=True)
    timing = _text(3, required=True)
    rationale = _text(10, required=True)
    citation = _cites()
    instead = fields.List(fields.Nested(_Instead))


class _Focus(_Strict):
    id = fields.String(required=True, validate=_ID)
    for_ = fields.String(required=True, data_key="for")
    focus = _text(10, required=True)
    citation = _cites()


def _file(**entries: fields.Field) -> type[Schema]:
    base = {"version": fields.String(required=True, validate=validate.Regexp(r"^\d+\.\d+\.\d+$")),
            "about": _text(20, required=True)}
    return _Strict.from_dict({**base, **entries})


_SCHEMAS = {
    "citations": _file(citations=fields.List(fields.Nested(_Citation), required=True)),
    "findings": _file(not_done=fields.List(fields.String(), required=True),
                      findings=fields.List(fields.Nested(_Finding), required=True)),
    "red-flags": _file(red_flags=fields.List(fields.Nested(_RedFlag), required=True)),
    "differential": _file(disclaimer=_text(20, required=True),
                          scoring=fields.Nested(_Scoring, required=True),
                          conditions=fields.List(fields.Nested(_Condition), required=True),
                          contributing_factors=fields.List(fields.Nested(_Factor), required=True),
                          caveats=fields.List(fields.Nested(_Caveat), required=True)),
    "referrals": _file(services=fields.List(fields.Nested(_Service), required=True),
                       rules=fields.List(fields.Nested(_Rule), required=True),
                       pt_focus=fields.List(fields.Nested(_Focus), required=True)),
}


# --- records -------------------------------------------------------------------------

@dataclass(frozen=True)
class Citation:
    id: str
    kind: str
    evidence: str
    text: str
    about: frozenset[str]  # the conditions and red flags the source is about


@dataclass(frozen=True)
class FindingDef:
    id: str
    display: str
    absent_display: str | None  # how it reads when recorded absent ("... negative")
    test: str | None  # the test or question that assesses it ("not assessed: ...")
    sided: bool
    when: p.Predicate
    rationale: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class RedFlagDef:
    id: str
    display: str
    urgency: str
    codes: tuple[Mapping[str, str], ...]
    when: p.Predicate
    action: str
    rationale: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceDef:
    """One finding's pull on one condition: ``contribution`` in log-odds units, already
    capped; ``when`` says whether the finding's presence or its absence counts."""

    finding: str
    when: str
    contribution: float
    basis: str  # how the contribution was set, for display
    group: str | None
    only_if: str | None
    unless: str | None
    rationale: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class ExclusionDef:
    """A diagnosis of exclusion ranks below any competitor whose specific cluster is
    positive unless its own score exceeds that competitor's by ``margin``."""

    margin: float
    rationale: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class ConditionDef:
    id: str
    display: str
    codes: tuple[Mapping[str, str], ...]
    key_findings: tuple[str, ...]
    evidence: tuple[EvidenceDef, ...]
    rationale: str
    citations: tuple[str, ...]
    cluster: str | None = None  # the finding that is this condition's specific cluster
    exclusion: ExclusionDef | None = None  # set for a diagnosis of exclusion


@dataclass(frozen=True)
class Band:
    name: str
    at_least: float | None
    above: float | None

    def holds(self, value: float) -> bool:
        return ((self.at_least is None or value >= self.at_least)
                and (self.above is None or value > self.above))


@dataclass(frozen=True)
class Scoring:
    bands: tuple[Band, ...]  # the lowest band is the bar for being listed at all
    confidence: tuple[Band, ...]
    below_confidence: str

    def band(self, score: float) -> str | None:
        """The likelihood band of a score; None below the lowest (not listed)."""
        return next((b.name for b in self.bands if b.holds(score)), None)

    def confidence_band(self, known: float) -> str:
        return next((b.name for b in self.confidence if b.holds(known)), self.below_confidence)


@dataclass(frozen=True)
class FactorDef:
    id: str
    display: str
    finding: str
    note: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class CaveatDef:
    id: str
    when: p.Predicate
    text: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class ServiceDef:
    id: str
    display: str
    category: str
    codes: tuple[Mapping[str, str], ...]
    codes_by_side: Mapping[str, tuple[Mapping[str, str], ...]]


@dataclass(frozen=True)
class InsteadDef:
    """What a rule says instead when ``when`` also holds (what was already tried changes
    the advice, e.g. physiotherapy after weeks of structured loading)."""

    id: str
    when: p.Predicate
    reason: str
    timing: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class RuleDef:
    id: str
    service: str
    priority: str
    when: p.Predicate
    reason: str
    timing: str
    citations: tuple[str, ...]
    instead: tuple[InsteadDef, ...] = ()

    @property
    def follows(self) -> frozenset[str]:
        """The services this rule waits for (it runs once the other rules have run)."""
        return frozenset(id_ for kind, id_ in self.when.refs() if kind == "referral")

    def topics(self) -> frozenset[str]:
        """The conditions and red flags the rule names: what its sources must be about."""
        return frozenset(id_ for kind, id_ in self.when.refs()
                         if kind in ("condition", "red_flag"))


@dataclass(frozen=True)
class FocusDef:
    id: str
    for_: str
    focus: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class DecisionKnowledge:
    """The checked rules of one knowledge release."""

    version: str
    disclaimer: str
    not_done: frozenset[str]
    citations: Mapping[str, Citation]
    findings: Mapping[str, FindingDef]  # in evaluation order (dependencies first)
    red_flags: tuple[RedFlagDef, ...]
    conditions: tuple[ConditionDef, ...]
    scoring: Scoring
    factors: tuple[FactorDef, ...]
    caveats: tuple[CaveatDef, ...]
    services: Mapping[str, ServiceDef]
    rules: tuple[RuleDef, ...]
    pt_focus: Mapping[str, FocusDef]
    thresholds: Mapping[str, Any]
    #: How visits are compared (``course.json``); None only where a test builds its own.
    course: course.CourseKnowledge | None = None

    def condition(self, id_: str) -> ConditionDef:
        return next(c for c in self.conditions if c.id == id_)


# --- loading -------------------------------------------------------------------------

def load(directory: str | Path, form: Form, thresholds: Mapping[str, Any]) -> DecisionKnowledge:
    """Read and check ``directory``'s five files against ``form`` and the thresholds."""
    directory = Path(directory)
    thresholds = _check_thresholds(thresholds, str(directory))
    raw = {name: _read(directory / f"{name}.json", name) for name in FILES}
    versions = {raw[n]["version"] for n in FILES}
    if len(versions) != 1:
        raise KnowledgeError(str(directory), "version",
                             f"the decision files must share one version, found "
                             f"{', '.join(sorted(versions))}")
    src = {name: str(directory / f"{name}.json") for name in FILES}
    citations = {}
    for n, c in enumerate(raw["citations"]["citations"]):
        _unique(citations, c["id"], src["citations"], f"citations[{n}].id")
        citations[c["id"]] = Citation(c["id"], c["kind"], c["evidence"], c["text"],
                                      frozenset(c.get("about") or ()))

    def cites(ids: list[str], source: str, where: str) -> tuple[str, ...]:
        for i in ids:
            if i not in citations:
                raise KnowledgeError(source, where, f"unknown citation {i!r}")
        return tuple(ids)

    def fill(text: str, source: str, where: str) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        unknown = names - set(thresholds)
        if unknown:
            raise KnowledgeError(source, where, f"unknown threshold(s) {sorted(unknown)}")
        return text.format_map(thresholds)

    findings = _findings(raw["findings"], form, thresholds, src["findings"], cites)
    known = {"finding": set(findings)}
    red_flags = []
    for n, r in enumerate(raw["red-flags"]["red_flags"]):
        where = f"red_flags[{n}]"
        _unique({x.id: x for x in red_flags}, r["id"], src["red-flags"], f"{where}.id")
        red_flags.append(RedFlagDef(
            r["id"], r["display"], r["urgency"], tuple(r.get("code") or ()),
            _predicate(r["when"], form, thresholds, src["red-flags"], f"{where}.when", known),
            fill(r["action"], src["red-flags"], f"{where}.action"), r["rationale"],
            cites(r["citation"], src["red-flags"], f"{where}.citation")))
    diff = raw["differential"]
    scoring = _scoring(diff["scoring"], src["differential"], cites)
    conditions: list[ConditionDef] = []
    for n, c in enumerate(diff["conditions"]):
        where = f"conditions[{n}]"
        _unique({x.id: x for x in conditions}, c["id"], src["differential"], f"{where}.id")
        for k, f in enumerate(c["key_findings"]):
            _known_finding(f, findings, src["differential"], f"{where}.key_findings[{k}]")
        evidence = tuple(_evidence(e, diff["scoring"], findings, src["differential"],
                                   f"{where}.evidence[{k}]", cites)
                         for k, e in enumerate(c["evidence"]))
        if not any(e.contribution > 0 for e in evidence):
            raise KnowledgeError(src["differential"], where, "no finding counts for it")
        for k, e in enumerate(evidence):
            if e.when == "absent" and findings[e.finding].absent_display is None:
                raise KnowledgeError(src["findings"], e.finding,
                                     f"counts when absent ({src['differential']} {where}."
                                     f"evidence[{k}]) but has no 'absent_display' saying how "
                                     f"it reads then (e.g. '... negative')")
        for f in c["key_findings"]:
            if findings[f].test is None:
                raise KnowledgeError(src["findings"], f,
                                     f"is a key finding ({src['differential']} {where}) but "
                                     f"has no 'test' naming what assesses it")
        if "cluster" in c:
            _known_finding(c["cluster"], findings, src["differential"], f"{where}.cluster")
        exclusion = None
        if "exclusion" in c:
            x = c["exclusion"]
            exclusion = ExclusionDef(x["margin"], x["rationale"], cites(
                x["citation"], src["differential"], f"{where}.exclusion.citation"))
        conditions.append(ConditionDef(c["id"], c["display"], tuple(c.get("code") or ()),
                                       tuple(c["key_findings"]), evidence, c["rationale"],
                                       cites(c["citation"], src["differential"], f"{where}.citation"),
                                       c.get("cluster"), exclusion))
    known["condition"] = {c.id for c in conditions}
    known["red_flag"] = {r.id for r in red_flags}
    factors = []
    for n, f in enumerate(diff["contributing_factors"]):
        where = f"contributing_factors[{n}]"
        _known_finding(f["finding"], findings, src["differential"], f"{where}.finding")
        if f["id"] in known["condition"]:
            raise KnowledgeError(src["differential"], f"{where}.id",
                                 "a contributing factor is never a condition")
        factors.append(FactorDef(f["id"], f["display"], f["finding"], f["note"],
                                 cites(f["citation"], src["differential"], f"{where}.citation")))
    caveats = tuple(
        CaveatDef(c["id"], _predicate(c["when"], form, thresholds, src["differential"],
                                      f"caveats[{n}].when", known),
                  fill(c["text"], src["differential"], f"caveats[{n}].text"), cites(c["citation"], src["differential"], f"caveats[{n}].citation"))
        for n, c in enumerate(diff["caveats"]))
    ref = raw["referrals"]
    services = {}
    for n, s in enumerate(ref["services"]):
        _unique(services, s["id"], src["referrals"], f"services[{n}].id")
        services[s["id"]] = ServiceDef(
            s["id"], s["display"], s["category"], tuple(s.get("code") or ()),
            MappingProxyType({k: tuple(v) for k, v in (s.get("code_by_side") or {}).items()}))
    rules: list[RuleDef] = []
    rule_ids: dict[str, None] = {}
    for n, r in enumerate(ref["rules"]):
        where = f"rules[{n}]"
        _unique(rule_ids, r["id"], src["referrals"], f"{where}.id")
        rule_ids[r["id"]] = None
        if r["service"] not in services:
            raise KnowledgeError(src["referrals"], f"{where}.service",
                                 f"unknown service {r['service']!r}")
        instead = []
        for k, v in enumerate(r.get("instead") or ()):
            at = f"{where}.instead[{k}]"
            _unique(rule_ids, v["id"], src["referrals"], f"{at}.id")
            rule_ids[v["id"]] = None
            instead.append(InsteadDef(
                v["id"], _predicate(v["when"], form, thresholds, src["referrals"], f"{at}.when",
                                    {**known, "course": set(p.COURSES)}),
                fill(v["reason"], src["referrals"], f"{at}.reason"),
                fill(v["timing"], src["referrals"], f"{at}.timing"),
                cites(v["citation"], src["referrals"], f"{at}.citation")))
        rules.append(RuleDef(
            r["id"], r["service"], r["priority"],
            _predicate(r["when"], form, thresholds, src["referrals"], f"{where}.when",
                       {**known, "referral": set(services), "course": set(p.COURSES)}),
            fill(r["reason"], src["referrals"], f"{where}.reason"),
            fill(r["timing"], src["referrals"], f"{where}.timing"),
            cites(r["citation"], src["referrals"], f"{where}.citation"), tuple(instead)))
    _check_follow_ups(rules, src["referrals"])
    _check_about(citations, rules, known["condition"] | known["red_flag"], src)
    pt_focus = {}
    targets = known["condition"] | {f.id for f in factors}
    for n, f in enumerate(ref["pt_focus"]):
        where = f"pt_focus[{n}]"
        if f["for_"] not in targets:
            raise KnowledgeError(src["referrals"], f"{where}.for",
                                 f"{f['for_']!r} is not a condition or contributing factor")
        _unique(pt_focus, f["for_"], src["referrals"], f"{where}.for")
        pt_focus[f["for_"]] = FocusDef(f["id"], f["for_"], f["focus"],
                                       cites(f["citation"], src["referrals"], f"{where}.citation"))
    return DecisionKnowledge(
        version=versions.pop(), disclaimer=diff["disclaimer"],
        not_done=frozenset(raw["findings"]["not_done"]),
        citations=MappingProxyType(citations), findings=MappingProxyType(findings),
        red_flags=tuple(red_flags), conditions=tuple(conditions), scoring=scoring,
        factors=tuple(factors), caveats=caveats, services=MappingProxyType(services),
        rules=tuple(rules), pt_focus=MappingProxyType(pt_focus),
        thresholds=MappingProxyType(dict(thresholds)),
        course=course.parse(_read_plain(directory / "course.json"),
                             source=str(directory / "course.json")))


def _read_plain(path: Path) -> Any:
    if not path.exists():
        raise KnowledgeError(str(path), "", "missing: how visits are compared")
    return read_json(path)


def _check_follow_ups(rules: list[RuleDef], source: str) -> None:
    """A rule that names another referral (``{"referral": id}``) runs after the others,
    so it may only name services that no such rule suggests: one step, never a cycle."""
    following = {r.service for r in rules if r.follows}
    for n, rule in enumerate(rules):
        for service in sorted(rule.follows):
            if service in following:
                raise KnowledgeError(source, f"rules[{n}].when",
                                     f"refers to the referral {service!r}, which a rule that "
                                     f"itself follows a referral suggests; name only services "
                                     f"the other rules suggest")


def _read(path: Path, name: str) -> dict[str, Any]:
    data = read_json(path)
    try:
        return _SCHEMAS[name]().load(data)
    except ValidationError as exc:
        where, problem = first_error(exc.messages)
        raise KnowledgeError(str(path), where, problem) from exc


def _check_thresholds(thresholds: Any, source: str) -> dict[str, Any]:
    if not isinstance(thresholds, Mapping):
        raise KnowledgeError("config", "DECISION_THRESHOLDS", "must be a mapping")
    for name, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                or not re.fullmatch(r"[A-Z][A-Z0-9_]*", str(name)):
            raise KnowledgeError("config", f"DECISION_THRESHOLDS.{name}",
                                 "must be an UPPER_CASE name with a positive number")
    return dict(thresholds)


def _unique(seen: Mapping[str, Any], id_: str, source: str, where: str) -> None:
    if id_ in seen:
        raise KnowledgeError(source, where, f"duplicate id {id_!r}")


def _known_finding(id_: str, findings: Mapping[str, FindingDef], source: str, where: str) -> None:
    if id_ not in findings:
        raise KnowledgeError(source, where, f"unknown finding {id_!r}")


def _predicate(data: Any, form: Form, thresholds: Mapping[str, Any], source: str, where: str,
               known: Mapping[str, set[str]], sided: bool = False) -> p.Predicate:
    scope = p.Scope(form, thresholds, source, sided=sided, allow=frozenset(known))
    predicate = p.compile_(data, scope, where)
    for kind, id_ in sorted(predicate.refs()):
        if id_ not in known.get(kind, ()):
            raise KnowledgeError(source, where, f"unknown {kind.replace('_', ' ')} {id_!r}")
    return predicate


def _findings(data: Mapping[str, Any], form: Form, thresholds: Mapping[str, Any], source: str,
              cites: Any) -> dict[str, FindingDef]:
    """Compile the findings and order them so each comes after those it uses."""
    entries = data["findings"]
    ids = [f["id"] for f in entries]
    for n, id_ in enumerate(ids):
        if id_ in ids[:n]:
            raise KnowledgeError(source, f"findings[{n}].id", f"duplicate id {id_!r}")
    compiled: dict[str, FindingDef] = {}
    for n, f in enumerate(entries):
        where = f"findings[{n}]"
        when = _predicate(f["when"], form, thresholds, source, f"{where}.when",
                          {"finding": set(ids)}, sided=f["sided"])
        compiled[f["id"]] = FindingDef(f["id"], f["display"], f.get("absent_display"),
                                       f.get("test"), f["sided"], when, f["rationale"],
                                       cites(f["citation"], source, f"{where}.citation"))
    ordered: dict[str, FindingDef] = {}
    visiting: list[str] = []

    def visit(id_: str) -> None:
        if id_ in ordered:
            return
        if id_ in visiting:
            cycle = " -> ".join([*visiting[visiting.index(id_):], id_])
            raise KnowledgeError(source, f"findings[{ids.index(id_)}].when",
                                 f"findings refer to each other in a cycle: {cycle}")
        visiting.append(id_)
        for kind, dep in sorted(compiled[id_].when.refs()):
            visit(dep)
        visiting.pop()
        ordered[id_] = compiled[id_]

    for id_ in ids:
        visit(id_)
    return ordered


def _check_about(citations: Mapping[str, Citation], rules: list[RuleDef],
                 topics: set[str], src: Mapping[str, str]) -> None:
    """Each referral cites sources about its own condition: every source a rule cites
    says (``about``) which conditions and red flags it covers; each covers one the rule
    names, and each condition the rule names is covered by one of its sources (so the
    referral, which shows only the sources about the conditions it rests on, never shows
    none)."""
    for id_, c in citations.items():
        for t in sorted(c.about - topics):
            raise KnowledgeError(src["citations"], id_, f"about: unknown condition or red flag {t!r}")
    for n, rule in enumerate(rules):
        named = rule.topics()
        conditions = {id_ for kind, id_ in rule.when.refs() if kind == "condition"}
        # An 'instead' entry's citations replace the rule's, so they answer to the same.
        variants = [(f"rules[{n}].citation", rule.citations)]
        variants += [(f"rules[{n}].instead[{k}].citation", v.citations)
                     for k, v in enumerate(rule.instead)]
        for where, cited in variants:
            for id_ in cited:
                about = citations[id_].about
                if not about:
                    raise KnowledgeError(src["referrals"], where,
                                         f"{id_!r} is cited by a referral but has no 'about' "
                                         f"in {src['citations']}")
                if named and not about & named:
                    raise KnowledgeError(src["referrals"], where,
                                         f"{id_!r} is about {', '.join(sorted(about))}, none "
                                         f"of which rule {rule.id!r} names")
            for condition in sorted(conditions):
                if not any(condition in citations[i].about for i in cited):
                    raise KnowledgeError(src["referrals"], where,
                                         f"no source about {condition!r}, which rule "
                                         f"{rule.id!r} names")


def _scoring(data: Mapping[str, Any], source: str, cites: Any) -> Scoring:
    cites(data["citation"], source, "scoring.citation")

    def bands(entries: list[dict[str, Any]], where: str) -> tuple[Band, ...]:
        result = []
        for n, b in enumerate(entries):
            if ("at_least" in b) == ("above" in b):
                raise KnowledgeError(source, f"scoring.{where}[{n}]",
                                     "give exactly one of at_least / above")
            result.append(Band(b["band"], b.get("at_least"), b.get("above")))
        return tuple(result)

    return Scoring(bands(data["bands"], "bands"),
                   bands(data["confidence"], "confidence"), data["below_confidence"])


def _evidence(e: Mapping[str, Any], scoring: Mapping[str, Any],
              findings: Mapping[str, FindingDef], source: str, where: str,
              cites: Any) -> EvidenceDef:
    _known_finding(e["finding"], findings, source, f"{where}.finding")
    for key in ("only_if", "unless"):
        if key in e:
            _known_finding(e[key], findings, source, f"{where}.{key}")
    if ("lr" in e) == ("weight" in e):
        raise KnowledgeError(source, where, "give exactly one of lr / weight")
    if "lr" in e:
        if "applies" not in e:
            raise KnowledgeError(source, f"{where}.applies",
                                 "say whether the LR applies 'direct' or 'capped'")
        cap = scoring["direct_cap"] if e["applies"] == "direct" else scoring["cap"]
        raw = math.log(e["lr"])
        contribution = max(-cap, min(cap, raw))
        ratio = "LR+" if e["lr"] >= 1 else "LR-"
        basis = (f"{ratio} {e['lr']:g}" + (" (capped)" if abs(raw) > cap else "")
                 + ("" if e["applies"] == "direct" else ", population differs"))
    else:
        if "applies" in e:
            raise KnowledgeError(source, f"{where}.applies", "only an LR applies direct or capped")
        if abs(e["weight"]) > scoring["weight_cap"] or e["weight"] == 0:
            raise KnowledgeError(source, f"{where}.weight",
                                 f"must be non-zero and within ±{scoring['weight_cap']}")
        contribution = e["weight"]
        basis = "expert weight"
    return EvidenceDef(e["finding"], e["when"], round(contribution, 3), basis, e.get("group"),
                       e.get("only_if"), e.get("unless"), e["rationale"],
                       cites(e["citation"], source, f"{where}.citation"))
