"""What the engine reasons over: the exam's answers, the patient's age, and where each
answer came from.

Two doors lead in. ``from_exam`` takes a validated exam (tablet, API, CLI); the
references point at the Observations the extraction Bundle will carry.
``from_observations`` takes coded Observations, e.g. ones an EHR already holds: each is
read back through the Observation mappings (our ``exam-tests`` code + laterality ->
linkId) and then validated exactly like typed answers, so the same rules see the same
facts whichever door was used.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..core import answers as answers_mod
from ..core import terminology as t
from ..core.mapping import LATERALITY, ObservationMappings
from ..core.questionnaire import Form
from ..errors import InputError

AGE = "patient.age-years"
_SIDE_OF = {c["code"]: side for side, c in LATERALITY.items()}


@dataclass(frozen=True)
class Facts:
    """linkId -> answers (as ``answers.load_plain`` makes them), plus references.

    ``references`` maps (linkId, value-or-None) to the FHIR reference of the
    Observation that recorded it; findings cite them as evidence.
    """

    answers: Mapping[str, tuple[Any, ...]]
    references: Mapping[tuple[str, Any], Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}))
    #: the visit's outcome-measure bands (score linkId -> band code, from
    #: ``core.prom_results.bands``): the one door for PROM findings; none by default, so
    #: an exam without PROMs is assessed exactly as before
    scores: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def age(self) -> int | None:
        values = self.answers.get(AGE)
        return values[0] if values else None

    @property
    def affected_side(self) -> str | None:
        values = self.answers.get("history.affected-side")
        return values[0] if values else None


def from_answers(answers: Mapping[str, tuple[Any, ...]], *, age: int | None = None,
                 references: Mapping[tuple[str, Any], Mapping[str, Any]] | None = None,
                 scores: Mapping[str, str] | None = None) -> Facts:
    """Facts from validated answers; ``age`` (e.g. from Patient.birthDate) fills a
    missing ``patient.age-years``; ``scores`` the visit's outcome-measure bands."""
    merged = dict(answers)
    if age is not None and AGE not in merged:
        merged[AGE] = (age,)
    return Facts(MappingProxyType(merged), MappingProxyType(dict(references or {})),
                 MappingProxyType(dict(scores or {})))


def from_observations(form: Form, mappings: ObservationMappings,
                      observations: Sequence[Mapping[str, Any]], *,
                      age: int | None = None) -> Facts:
    """Facts from coded Observations; those not coded with our exam-tests system, or
    with a code ``form`` does not ask (a follow-up's own items), are skipped (an EHR
    sends what it has). Conflicting or invalid values are refused with
    the linkId, exactly as typed answers would be."""
    by_code = {(c["code"], m.laterality): m.link_id
               for m in mappings.by_link_id.values() for c in m.codes
               if c.get("system") == t.EXAM_TESTS}
    #: our codes of questions this form asks; another form's own (a follow-up's global
    #: rating, "neuro unchanged") is skipped like any code the engine does not read
    asked = {code for code, _ in by_code}
    plain: dict[str, Any] = {}
    refs: dict[tuple[str, Any], Mapping[str, Any]] = {}
    for n, obs in enumerate(observations):
        where = f"observation[{n}]"
        if not isinstance(obs, Mapping) or obs.get("resourceType") != "Observation":
            raise InputError("Expected Observation resources.", expression=where)
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        code = next((c.get("code") for c in (obs.get("code") or {}).get("coding") or []
                     if isinstance(c, Mapping) and c.get("system") == t.EXAM_TESTS), None)
        if code is None or code not in asked:
            continue
        link_id = by_code.get((code, _laterality(obs)))
        if link_id is None:
            raise InputError(f"Observation coded {code!r} needs "
                             f"{'a' if (code, None) not in by_code else 'no'} laterality to "
                             f"name one exam question.", expression=f"{where}.bodySite")
        item = form.index[link_id]
        value = _plain_value(obs, item, where)
        if item.repeats:
            plain.setdefault(link_id, []).append(value)
        elif link_id in plain and plain[link_id] != value:
            raise InputError(f"Two Observations give different answers for {link_id}.",
                             expression=where)
        else:
            plain[link_id] = value
        reference = _reference(obs)
        if reference is not None:
            refs[(link_id, value if item.repeats else None)] = reference
    loaded = answers_mod.load_plain(form, plain)
    return from_answers(loaded, age=age, references=refs)


def _laterality(obs: Mapping[str, Any]) -> str | None:
    for ext in (obs.get("bodySite") or {}).get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == t.EXT_STRUCTURE_LATERALITY:
            for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                side = _SIDE_OF.get(coding.get("code")) if isinstance(coding, Mapping) else None
                if side:
                    return side
    return None


def _plain_value(obs: Mapping[str, Any], item: Any, where: str) -> Any:
    """The Observation's value in the plain answers format (validated later)."""
    if "valueCodeableConcept" in obs:
        for coding in (obs["valueCodeableConcept"] or {}).get("coding") or []:
            option = item.option_for_coding(coding) if isinstance(coding, Mapping) else None
            if option is not None:
                return option.code
        raise InputError(f"No coding of the value is an answer option of {item.link_id}.",
                         expression=f"{where}.valueCodeableConcept")
    if "valueQuantity" in obs:
        q = obs["valueQuantity"] or {}
        if item.type == "quantity":
            return {"value": q.get("value"), "unit": q.get("code")}
        return q.get("value")
    for key in ("valueBoolean", "valueInteger"):
        if key in obs:
            return obs[key]
    raise InputError(f"The Observation for {item.link_id} has no value this exam question "
                     f"can take.", expression=where)


def _reference(obs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if isinstance(obs.get("id"), str):
        return {"reference": f"Observation/{obs['id']}", "type": "Observation"}
    return None

