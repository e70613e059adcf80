"""The engine: facts in, an explainable Assessment out, the same every time.

Order matters and is fixed: red flags first (they set the urgency and can never be
outranked); then every condition is scored from the findings for and against it and
ranked; then the referral rules run over the findings, the suggested conditions and the
raised red flags. In an emergency only the emergency referrals remain. Nothing here
decides: every output carries its reasons and says it is a suggestion.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import episode as ep
from . import predicates as p
from .catalogue import (PRIORITIES, ConditionDef, DecisionKnowledge, FactorDef,
                        FocusDef, RedFlagDef, ServiceDef)
from .facts import Facts
from .findings import Finding, Findings

URGENCY_ORDER = ("emergency", "urgent", "routine")
#: Bands at which a condition counts as suggested even when not ranked first.
SUGGESTED_BANDS = ("high", "moderate")


@dataclass(frozen=True)
class Evidence:
    """One finding's part in one condition's score, as shown to the clinician.

    ``label`` says what was found: the finding's display when it counts by its
    presence, its ``absent_display`` ("Puranen-Orava test negative") when by its absence.
    """

    finding: Finding
    weight: float  # contribution to the score; 0 when its answers already counted
    basis: str
    rationale: str
    citations: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class Candidate:
    condition: ConditionDef
    rank: int
    score: float
    likelihood: str
    confidence: str
    for_: tuple[Evidence, ...]
    against: tuple[Evidence, ...]
    not_assessed: tuple[str, ...]  # key finding ids
    citations: tuple[str, ...]
    missing_tests: tuple[str, ...] = ()  # the tests behind not_assessed, by name, once each
    ranking_note: str | None = None  # why it ranks below a higher-scoring competitor
    ranking_citations: tuple[str, ...] = ()  # the sources for ranking_note

    @property
    def suggested(self) -> bool:
        return self.score > 0 and (self.rank == 1 or self.likelihood in SUGGESTED_BANDS)


@dataclass(frozen=True)
class RaisedFlag:
    definition: RedFlagDef
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Factor:
    definition: FactorDef
    finding: Finding


@dataclass(frozen=True)
class Referral:
    service: ServiceDef
    priority: str
    reason: str
    timing: str
    citations: tuple[str, ...]
    rules: tuple[str, ...]
    focus: tuple[FocusDef, ...]
    sources: frozenset[p.Source]  # the answers behind it (its Observations)
    conditions: tuple[str, ...]  # suggested conditions it rests on


@dataclass(frozen=True)
class Caveat:
    id: str
    text: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class Assessment:
    urgency: str
    red_flags: tuple[RaisedFlag, ...]
    differential: tuple[Candidate, ...]
    factors: tuple[Factor, ...]
    referrals: tuple[Referral, ...]
    pt_focus: tuple[FocusDef, ...]
    caveats: tuple[Caveat, ...]
    knowledge_version: str
    disclaimer: str
    findings: Findings
    #: Set when earlier visits of the episode were given: what was compared and how long.
    episode: ep.Episode | None = None

    @property
    def facts(self) -> Facts:
        return self.findings.facts

    def as_json(self) -> dict[str, Any]:
        """The stable JSON contract (CLI ``--format json``, API, tablet review)."""
        return {
            "urgency": self.urgency,
            "red_flags": [{"id": f.definition.id, "display": f.definition.display,
                           "urgency": f.definition.urgency,
                           "findings": [x.id for x in f.findings],
                           "action": f.definition.action,
                           "citations": list(f.definition.citations)} for f in self.red_flags],
            "differential": [_candidate_json(c) for c in self.differential],
            "contributing_factors": [{"id": f.definition.id, "display": f.definition.display,
                                      "findings": [f.finding.id], "note": f.definition.note,
                                      "citations": list(f.definition.citations)}
                                     for f in self.factors],
            "referrals": [_referral_json(r) for r in self.referrals],
            "pt_focus": [{"for": f.for_, "focus": f.focus, "citations": list(f.citations)}
                         for f in self.pt_focus],
            "caveats": [{"id": c.id, "text": c.text, "citations": list(c.citations)}
                        for c in self.caveats],
            "knowledge_version": self.knowledge_version,
            "disclaimer": self.disclaimer,
            **({"episode": self.episode.as_json()} if self.episode else {}),
        }


def assess(knowledge: DecisionKnowledge, facts: Facts, prior: Sequence[ep.Visit] = (), *,
           on: dt.date | None = None, kind: str = "follow-up") -> Assessment:
    """Red flags, then the ranked differential, then referrals and caveats.

    ``prior``: the episode's earlier signed visits, oldest first, and ``on`` the date of
    this one (``kind`` its type). Then the timing rules use the real elapsed time, the
    story recorded earlier stands unless asked again, and the rules on the response to
    treatment (``{"course": ...}``) can fire, citing the visits compared. Without them
    the behaviour is that of a single exam. Red flags are always this visit's own."""
    episode = None
    if prior:
        if on is None:
            raise ValueError("comparing visits needs the date of the current one")
        visits = (*prior, ep.Visit("", kind, on, ep.plain(facts.answers), None))
        facts = ep.over_episode(facts, visits)
        episode = ep.Episode(tuple(prior), ep.elapsed(visits),
                          ep.course(knowledge.course, visits) if knowledge.course else None)
    findings = Findings(knowledge, facts)
    env = findings.env
    env.course = episode.course.verdict if episode and episode.course else None
    flags = _red_flags(knowledge, findings)
    urgency = min((f.definition.urgency for f in flags), key=URGENCY_ORDER.index,
                  default="routine")
    differential = _differential(knowledge, findings)
    suggested = {c.condition.id for c in differential if c.suggested}
    raised = {f.definition.id: p.Result(True, frozenset().union(*(x.sources for x in f.findings)))
              for f in flags}
    env.condition = lambda id_: id_ in suggested
    env.red_flag = lambda id_: raised.get(id_, p.Result(False))
    factors = tuple(Factor(f, findings.get(f.finding)) for f in knowledge.factors
                    if findings.truth(f.finding))
    focus = () if urgency == "emergency" else tuple(
        knowledge.pt_focus[i] for i in [*(c.condition.id for c in differential if c.suggested),
                                        *(f.definition.id for f in factors)]
        if i in knowledge.pt_focus)
    referrals = _referrals(knowledge, env, urgency, focus, suggested, set(raised),
                           episode.course if episode else None)
    caveats = [Caveat(c.id, c.text, c.citations) for c in knowledge.caveats
               if c.when.evaluate(env, None).truth]
    caveats += _completeness_caveats(differential)
    caveats += _episode_caveats(episode)
    return Assessment(urgency, flags, differential, factors, referrals, focus, tuple(caveats),
                      knowledge.version, knowledge.disclaimer, findings, episode)


def _episode_caveats(episode: ep.Episode | None) -> list[Caveat]:
    """Say which time and which comparison the suggestions used, in words."""
    if episode is None:
        return []
    caveats = []
    if episode.elapsed is not None:
        caveats.append(Caveat("episode-elapsed", f"Time since onset used by the timing "
                              f"rules: {episode.elapsed.text}.", ()))
    if episode.course is not None:
        c = episode.course
        if c.verdict is not None:
            caveats.append(Caveat("episode-course", f"Response since the {c.before.named}: "
                                  f"{ep.WORDS[c.verdict]} ({c.text}).", ()))
    return caveats


def red_flags(knowledge: DecisionKnowledge, facts: Facts) -> tuple[RaisedFlag, ...]:
    """Only the red flags the facts raise: what the exam pages alert on while the
    clinician is still answering (the same rules as ``assess``, without the rest)."""
    return _red_flags(knowledge, Findings(knowledge, facts))


def _red_flags(knowledge: DecisionKnowledge, findings: Findings) -> tuple[RaisedFlag, ...]:
    return tuple(_raise(r, findings) for r in knowledge.red_flags
                 if r.when.evaluate(findings.env, None).truth)


def _raise(definition: RedFlagDef, findings: Findings) -> RaisedFlag:
    """The raised flag with the findings that triggered it, on either leg (a red flag
    on the other leg is still a red flag)."""
    ids = {id_ for kind, id_ in definition.when.refs() if kind == "finding"}
    shown = (findings.get(id_, "any") for id_ in findings.knowledge.findings if id_ in ids)
    return RaisedFlag(definition, tuple(f for f in shown if f.truth))


def _differential(knowledge: DecisionKnowledge, findings: Findings) -> tuple[Candidate, ...]:
    candidates = []
    for condition in knowledge.conditions:
        applicable: list[tuple[Any, Finding]] = []
        for e in condition.evidence:
            if e.only_if and findings.truth(e.only_if) is not True:
                continue
            if e.unless and findings.truth(e.unless) is True:
                continue
            finding = findings.get(e.finding)
            if finding.truth is (e.when == "present"):
                applicable.append((e, finding))
        lines = _counted_once(knowledge, applicable)
        score = round(sum(ev.weight for _, ev in lines), 2)
        # Listed only when a present finding supports it and the score reaches a band:
        # the absence of findings alone never suggests anything.
        band = knowledge.scoring.band(score)
        if band is None or not any(ev.weight > 0 for e, ev in lines if e.when == "present"):
            continue
        missing = tuple(k for k in condition.key_findings if findings.truth(k) is None)
        citations = dict.fromkeys(condition.citations)
        for e, _ in lines:
            citations.update(dict.fromkeys(e.citations))
        candidates.append(Candidate(
            condition, 0, score, band,
            knowledge.scoring.confidence_band(1 - len(missing) / len(condition.key_findings)),
            tuple(ev for e, ev in lines if e.contribution > 0),
            tuple(ev for e, ev in lines if e.contribution < 0), missing, tuple(citations),
            tuple(dict.fromkeys(str(knowledge.findings[k].test) for k in missing))))
    # stable sort: equal scores keep the order of differential.json
    candidates.sort(key=lambda c: -c.score)
    candidates = _exclusions_yield(candidates, findings)
    return tuple(replace(c, rank=rank) for rank, c in enumerate(candidates, start=1))


def _exclusions_yield(candidates: list[Candidate], findings: Findings) -> list[Candidate]:
    """A diagnosis of exclusion moves below every competitor whose specific cluster is
    positive, unless its score exceeds that competitor's by the knowledge's margin; it
    stays listed, with the reason in words."""
    ordered = list(candidates)
    for excluded in [c for c in candidates if c.condition.exclusion]:
        margin = excluded.condition.exclusion.margin
        at = ordered.index(excluded)
        above = [c for c in ordered[at + 1:] if not c.condition.exclusion
                 and c.condition.cluster and findings.truth(c.condition.cluster) is True
                 and excluded.score - c.score < margin]
        if not above:
            continue
        last = ordered.index(above[-1])
        ordered.remove(excluded)
        competitors = "; ".join(
            f"{c.condition.display} (score {c.score:g}; positive: "
            f"{findings.get(c.condition.cluster).display})" for c in above)
        note = (f"Ranked below {competitors}: {excluded.condition.display} is a diagnosis of "
                f"exclusion and ranks above a competitor whose specific cluster is positive "
                f"only when its score ({excluded.score:g}) is higher by {margin:g} or more. "
                f"{excluded.condition.exclusion.rationale}")
        citations = tuple(dict.fromkeys((*excluded.citations,
                                         *excluded.condition.exclusion.citations)))
        ordered.insert(last, replace(excluded, ranking_note=note, citations=citations,
                                     ranking_citations=excluded.condition.exclusion.citations))
    return ordered


def _counted_once(knowledge: DecisionKnowledge, applicable: list[tuple[Any, Finding]]
                  ) -> list[tuple[Any, Evidence]]:
    """Each answer counts once per condition: of a test family (``group``) only its
    strongest item counts, and of items pulling the same way on exactly the same answers
    (tender and reproduces-familiar-pain from one palpation) only the strongest. The others stay on
    the list with weight 0 ("counted once, with ...") so the API still shows them; pages,
    PDFs and cards list only what counted. A cluster rests on more answers than any one
    of its parts, so it still adds to them."""
    ranked = sorted(applicable, key=lambda item: -abs(item[0].contribution))  # stable
    counted: dict[int, tuple[Any, Finding]] = {}  # id(item) -> the item it counts with
    families: dict[str, tuple[Any, Finding]] = {}
    answers: dict[tuple[bool, frozenset[p.Source]], tuple[Any, Finding]] = {}
    for item in ranked:
        e, finding = item
        same = (e.contribution > 0, finding.sources)
        lead = families.get(e.group) if e.group else None
        lead = lead or (answers.get(same) if finding.sources else None)
        counted[id(item)] = lead or item
        if lead is None:
            if e.group:
                families[e.group] = item
            if finding.sources:
                answers[same] = item
    lines = []
    for item in applicable:  # in the knowledge's order
        e, finding = item
        lead_e, lead_finding = counted[id(item)]
        label = _label(knowledge, e.finding, e.when)
        if lead_e is e:
            lines.append((e, Evidence(finding, e.contribution, e.basis, e.rationale,
                                      e.citations, label)))
        else:
            basis = f"counted once, with: {_label(knowledge, lead_e.finding, lead_e.when)}"
            lines.append((e, Evidence(finding, 0.0, basis, e.rationale, e.citations, label)))
    return lines


def _label(knowledge: DecisionKnowledge, finding: str, when: str) -> str:
    definition = knowledge.findings[finding]
    if when == "absent":
        return str(definition.absent_display)  # knowledge.load requires it
    return definition.display


def _referrals(knowledge: DecisionKnowledge, env: p.Env, urgency: str,
               focus: tuple[FocusDef, ...], suggested: set[str],
               raised: set[str], course: ep.Comparison | None = None) -> tuple[Referral, ...]:
    """Every rule that holds, grouped by service (the most pressing rule leads). Rules
    that follow another referral (``{"referral": id}``: the work-up a referral needs)
    run second, over the services the first run suggested."""
    by_service: dict[str, list[Any]] = {}

    def run(rules: list[Any]) -> None:
        for rule in rules:
            result = rule.when.evaluate(env, None)
            if not result.truth:
                continue
            for other in rule.instead:  # what was already tried changes the advice
                also = other.when.evaluate(env, None)
                if also.truth:
                    rule = replace(rule, reason=other.reason, timing=other.timing,
                                   citations=other.citations)
                    result = p.Result(True, result.sources | also.sources)
                    break
            if course is not None and ("course", "not-improving") in rule.when.refs():
                rule = replace(rule, reason=f"{rule.reason} Compared: {course.text}.")
            by_service.setdefault(rule.service, []).append((rule, result))

    def shown(hits: list[Any]) -> bool:  # in an emergency nothing routine distracts
        lead = min(hits, key=lambda h: PRIORITIES.index(h[0].priority))[0]
        return urgency != "emergency" or lead.priority == "stat"

    run([r for r in knowledge.rules if not r.follows])
    first = {s: p.Result(True, frozenset().union(*(res.sources for _, res in hits)))
             for s, hits in by_service.items() if shown(hits)}
    env.referral = lambda id_: first.get(id_, p.Result(False))
    run([r for r in knowledge.rules if r.follows])
    referrals = []
    for service_id, hits in by_service.items():
        hits.sort(key=lambda h: PRIORITIES.index(h[0].priority))
        lead = hits[0][0]
        if not shown(hits):
            continue
        citations: list[str] = []
        for rule, _ in hits:
            citations += [c for c in _about_this_patient(knowledge, rule, suggested | raised)
                          if c not in citations]
        refs = set().union(*(r.when.refs() for r, _ in hits))
        referrals.append(Referral(
            knowledge.services[service_id], lead.priority,
            " ".join(dict.fromkeys(r.reason for r, _ in hits)), lead.timing, tuple(citations),
            tuple(r.id for r, _ in hits), focus if service_id == "physiotherapy" else (),
            frozenset().union(*(res.sources for _, res in hits)),
            tuple(c.id for c in knowledge.conditions
                  if ("condition", c.id) in refs and c.id in suggested)))
    order = [r.id for r in knowledge.rules]
    referrals.sort(key=lambda r: (PRIORITIES.index(r.priority), order.index(r.rules[0])))
    return tuple(referrals)


def _about_this_patient(knowledge: DecisionKnowledge, rule: Any, present: set[str]) -> list[str]:
    """A rule's sources about the conditions and red flags it rests on for this patient
    (a physiotherapy referral for a hamstring tendon cites the tendon sources, not the
    low-back guidelines the same rule cites for sciatica); all of them when the rule
    names none (knowledge.load checks every source is about one it names)."""
    live = rule.topics() & present
    shown = [c for c in rule.citations if not live or knowledge.citations[c].about & live]
    return shown or list(rule.citations)


def _completeness_caveats(differential: tuple[Candidate, ...]) -> list[Caveat]:
    """Say which key tests were not done for the leading conditions (unknown is never
    counted as negative, so a thin exam shows as low confidence, not as a verdict)."""
    caveats = []
    for candidate in differential[:2]:
        if candidate.not_assessed and candidate.confidence != "high":
            caveats.append(Caveat(
                f"not-assessed-{candidate.condition.id}",
                f"{candidate.condition.display}: confidence {candidate.confidence}; not "
                f"assessed: {'; '.join(candidate.missing_tests)}. Missing tests are not "
                f"counted as negative.", ()))
    if not differential:
        caveats.append(Caveat("nothing-supported", "No condition is supported by the "
                              "recorded findings.", ()))
    return caveats


def _evidence_json(e: Evidence) -> dict[str, Any]:
    line: dict[str, Any] = {"finding": e.finding.id, "display": e.label}
    if e.finding.sides:
        line["sides"] = list(e.finding.sides)
    line.update({"weight": round(e.weight, 2), "basis": e.basis,
                 "citations": list(e.citations)})
    return line


def _candidate_json(c: Candidate) -> dict[str, Any]:
    entry: dict[str, Any] = {"condition": c.condition.id, "display": c.condition.display}
    if c.condition.codes:
        entry["code"] = [dict(x) for x in c.condition.codes]
    entry.update({"rank": c.rank, "likelihood": c.likelihood, "score": c.score,
                  "confidence": c.confidence, "suggested": c.suggested,
                  "for": [_evidence_json(e) for e in c.for_],
                  "against": [_evidence_json(e) for e in c.against],
                  "not_assessed": list(c.not_assessed),
                  "not_assessed_tests": list(c.missing_tests), "citations": list(c.citations)})
    if c.ranking_note:
        entry["ranking_note"] = c.ranking_note
        entry["ranking_citations"] = list(c.ranking_citations)
    return entry


def _referral_json(r: Referral) -> dict[str, Any]:
    entry: dict[str, Any] = {"service": r.service.id, "display": r.service.display,
                             "priority": r.priority, "reason": r.reason, "timing": r.timing,
                             "citations": list(r.citations), "rules": list(r.rules)}
    if r.focus:
        entry["focus"] = [f.focus for f in r.focus]
    return entry

