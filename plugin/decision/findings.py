"""Findings: the vocabulary the rules speak, derived from the facts once per assessment.

A sided finding is worked out for each leg. Where a rule asks about it without naming a
side, the *symptomatic* sides count (``history.affected-side``; both when bilateral):
present if present on one of them, absent only if absent on all of them. When the
affected side was not recorded, a finding is present if present on either leg and
absent if tested negative and positive nowhere.
"""
from __future__ import annotations

import weakref

from dataclasses import dataclass

from . import predicates as p
from .catalogue import DecisionKnowledge, FindingDef
from .facts import Facts


@dataclass(frozen=True)
class Finding:
    """A finding as it stands for this patient (symptomatic sides for sided ones)."""

    id: str
    display: str
    truth: p.Truth
    sides: tuple[str, ...]  # the legs it is present on (sided findings)
    sources: frozenset[p.Source]


class Findings:
    """Every finding of the catalogue, evaluated for one patient."""

    def __init__(self, knowledge: DecisionKnowledge, facts: Facts) -> None:
        self.knowledge = knowledge
        self.facts = facts
        side = facts.affected_side
        self.symptomatic = p.SIDES if side in (None, "bilateral") else (side,)
        self._side_known = side is not None
        self._values: dict[tuple[str, str | None], p.Result] = {}
        # the Env reaches back to this object weakly: a strong reference (the bound
        # method) would make every assessment a reference cycle, freed only by the
        # cyclic GC, whose full collections were the slow tail (p99) of ``$extract``
        this = weakref.ref(self)
        self.env = p.Env(facts.answers, knowledge.not_done,
                         finding=lambda *args: this().result(*args),
                         scores=facts.scores)  # type: ignore[union-attr]
        for definition in knowledge.findings.values():  # dependencies come first
            for s in (p.SIDES if definition.sided else (None,)):
                self._values[(definition.id, s)] = definition.when.evaluate(self.env, s)

    def result(self, id_: str, side: str | None = None, mode: str | None = None) -> p.Result:
        """The finding on ``side``; without one, over the symptomatic sides
        (``mode='any'``: over both legs)."""
        definition = self.knowledge.findings[id_]
        if not definition.sided:
            return self._values[(id_, None)]
        if mode in p.SIDES:
            return self._values[(id_, mode)]
        if side is not None and mode is None:
            return self._values[(id_, side)]
        sides = p.SIDES if mode == "any" else self.symptomatic
        results = [self._values[(id_, s)] for s in sides]
        true = [r for r in results if r.truth is True]
        if true:
            return p.Result(True, frozenset().union(*(r.sources for r in true)))
        false = [r for r in results if r.truth is False]
        lenient = mode is None and not self._side_known  # side unrecorded: what was tested
        if false and (len(false) == len(results) or lenient):
            return p.Result(False, frozenset().union(*(r.sources for r in false)))
        return p.UNKNOWN

    def get(self, id_: str, mode: str | None = None) -> Finding:
        """The finding over the symptomatic sides (``mode='any'``: over both legs), with
        the legs it is present on."""
        definition: FindingDef = self.knowledge.findings[id_]
        result = self.result(id_, None, mode)
        sides: tuple[str, ...] = ()
        if definition.sided and result.truth:
            legs = p.SIDES if mode == "any" else self.symptomatic
            sides = tuple(s for s in legs if self._values[(id_, s)].truth)
        return Finding(id_, definition.display, result.truth, sides, result.sources)

    def truth(self, id_: str) -> p.Truth:
        return self.result(id_).truth
