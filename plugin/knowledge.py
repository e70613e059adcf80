"""Load and check every definition and data file once, at start-up, into a KnowledgeBase.

A typo in a data file must stop the service with a message naming the file and the
place inside it, never surface halfway through a patient's exam. This is the only
module that reads ``questionnaires/`` and ``mappings/``; everything else receives the
frozen KnowledgeBase. ``questionnaires/`` holds the definitions the API publishes: the
Questionnaires, our CodeSystems (``codesystems/``) and the StructureDefinitions of our own
extensions (``structuredefinitions/``), so a receiver can look up every URL we write.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .core import fhir_models, interpretation, invariants, mapping, questionnaire, scoring
from .core import terminology as t
from .core.mapping import ObservationMappings
from .core.questionnaire import Form
from .core.scoring import Instrument
from .decision import catalogue, codesystem, handouts, predicates, return_to_sport
from .decision.catalogue import DecisionKnowledge
from .decision.handouts import Handouts
from .datafiles import read_json
from .errors import KnowledgeError

EXTENSION_KEY = "plugin.knowledge"
#: The Questionnaire whose linkIds the decision rules speak (the exam dictionary's).
DECISION_FORM = "posterior-thigh-exam"
#: The follow-up visit's Questionnaire (contract K2): the return-to-sport items live there.
FOLLOW_UP_FORM = "posterior-thigh-follow-up"
#: The exercise drawings the patient handout names (printed by the document templates).
DRAWINGS_DIR = Path(__file__).resolve().parent / "adapters" / "documents" / "static" / "exercises"


@dataclass(frozen=True)
class KnowledgeBase:
    """Everything the pipeline knows, checked and frozen."""

    forms: Mapping[str, Form]
    code_systems: Mapping[str, Mapping[str, Any]]
    structure_definitions: Mapping[str, Mapping[str, Any]]
    observation_mappings: Mapping[str, ObservationMappings]
    decision: DecisionKnowledge
    handouts: Handouts
    #: Scored questionnaires (outcome measures): any Questionnaire in the folder with a
    #: calculatedExpression, scored from its own data (``core.scoring``), no mappings needed.
    instruments: Mapping[str, Instrument] = field(default_factory=lambda: MappingProxyType({}))
    #: What each loaded instrument's scores mean (``mappings/outcomes/interpretation.json``),
    #: by score linkId.
    interpretations: Mapping[str, interpretation.Meaning] = field(
        default_factory=lambda: MappingProxyType({}))
    #: The return-to-sport criteria (``mappings/decision/return-to-sport.json``).
    return_to_sport: return_to_sport.ReturnToSport | None = None

    def form_for(self, canonical: str) -> Form | None:
        """The Form a canonical names: ``url`` (newest loaded) or ``url|version``."""
        url, _, version = canonical.partition("|")
        for form in self.forms.values():
            if form.url == url and (not version or form.version == version):
                return form
        return None

    def instrument_for(self, canonical: str) -> Instrument | None:
        """The Instrument a canonical names: ``url`` or ``url|version``."""
        url, _, version = canonical.partition("|")
        for instrument in self.instruments.values():
            if instrument.url == url and (not version or instrument.version == version):
                return instrument
        return None

    def mappings_for(self, form: Form) -> ObservationMappings:
        return self.observation_mappings[form.id]


def load(questionnaires_dir: str | Path, mappings_dir: str | Path,
         thresholds: Mapping[str, Any] | None = None) -> KnowledgeBase:
    """Read, check and cross-check the definition and mapping folders; ``thresholds``
    are the decision rules' timing thresholds (default: the configured defaults)."""
    qdir, mdir = Path(questionnaires_dir), Path(mappings_dir)
    code_systems = {}
    for path in sorted((qdir / "codesystems").glob("*.json")):
        resource = _read_resource(path, "CodeSystem")
        _check_code_system(resource, str(path))
        code_systems[resource["id"]] = resource
    structure_definitions = {}
    for path in sorted((qdir / "structuredefinitions").glob("*.json")):
        resource = _read_resource(path, "StructureDefinition")
        _check_extension_definition(resource, str(path))
        structure_definitions[resource["id"]] = resource
    equivalents = _equivalents(code_systems.get("exam-answers"))
    forms: dict[str, Form] = {}
    instruments: dict[str, Instrument] = {}
    for path in sorted(qdir.glob("*.json")):
        resource = _read_resource(path, "Questionnaire")
        if scoring.is_scored(resource):  # an outcome measure: a second kind of form
            instrument = scoring.parse(resource, source=str(path))
            _check_invariants(resource, str(path))
            _check_codes_known(_instrument_codings(resource), code_systems, str(path))
            instruments[instrument.id] = instrument
            continue
        # The parser first: its messages give the exact position (item[1].item[3]...).
        form = questionnaire.parse(resource, source=str(path), equivalents=equivalents)
        _check_invariants(resource, str(path))
        _check_codes_known(((item.link_id, coding) for item in form.index.values()
                            for coding in [*item.codes, *(o.coding for o in item.options)]),
                           code_systems, str(path))
        forms[form.id] = form
    if not forms:
        raise KnowledgeError(str(qdir), "", "no Questionnaire found")
    observation_mappings = _observation_mappings(mdir / "observations", forms)
    if DECISION_FORM not in forms:
        raise KnowledgeError(str(qdir), "", f"the decision rules need Questionnaire {DECISION_FORM!r}")
    if thresholds is None:
        from .config import DEFAULTS
        thresholds = DEFAULTS["DECISION_THRESHOLDS"]  # type: ignore[assignment]
    decision = catalogue.load(mdir / "decision", forms[DECISION_FORM], thresholds)
    patient_handouts = handouts.load(mdir / "decision" / "handouts.json", decision, DRAWINGS_DIR)
    if codesystem.ID in code_systems:
        raise KnowledgeError(str(qdir / "codesystems"), codesystem.ID,
                             "is built from mappings/decision; do not keep a copy")
    code_systems[codesystem.ID] = codesystem.build(decision)
    meanings = _interpretations(mdir / "outcomes" / "interpretation.json", instruments)
    rts = _return_to_sport(mdir / "decision" / "return-to-sport.json", decision, forms)
    _check_score_tests(decision, mdir / "outcomes" / "interpretation.json")
    return KnowledgeBase(forms=MappingProxyType(forms),
                         code_systems=MappingProxyType(code_systems),
                         structure_definitions=MappingProxyType(structure_definitions),
                         observation_mappings=MappingProxyType(observation_mappings),
                         decision=decision, handouts=patient_handouts,
                         instruments=MappingProxyType(instruments),
                         interpretations=meanings, return_to_sport=rts)


def _return_to_sport(path: Path, decision: DecisionKnowledge, forms: Mapping[str, Form]
                     ) -> return_to_sport.ReturnToSport:
    """The criteria, checked; their linkIds must be questions of the follow-up
    Questionnaire when it is loaded (a clinic without follow-ups still loads)."""
    if not path.exists():
        raise KnowledgeError(str(path), "", "missing: the return-to-sport criteria")
    known = {c.id for c in decision.conditions} | {r.id for r in decision.red_flags}
    rts = return_to_sport.parse(read_json(path), source=str(path), conditions=known)
    form = forms.get(FOLLOW_UP_FORM)
    if form is not None:
        for link_id in return_to_sport.link_ids(rts):
            if link_id not in form.index:
                raise KnowledgeError(str(path), link_id, f"is not a question of {form.id}")
    return rts


def _observation_mappings(folder: Path, forms: Mapping[str, Form]
                          ) -> Mapping[str, ObservationMappings]:
    """Each form's checked observation mappings; a file that ``extends`` another form's
    takes that form's mappings for the linkIds the two share (``mapping.inherit``)."""
    parsed = {}
    for form in forms.values():
        path = folder / f"{form.id}.json"
        if not path.exists():
            raise KnowledgeError(str(path), "", f"missing: every Questionnaire needs "
                                                f"observation mappings ({form.id})")
        parsed[form.id] = mapping.parse(read_json(path), source=str(path))
    result = {}
    # the forms whose files stand alone first: an error in a shared mapping is named
    # in its own file, not in the file that extends it
    for form in sorted(forms.values(), key=lambda f: parsed[f.id].extends is not None):
        own, path = parsed[form.id], str(folder / f"{form.id}.json")
        if own.extends is not None:
            base = parsed.get(own.extends)
            if base is None or base.extends is not None:
                raise KnowledgeError(path, "extends", f"{own.extends!r} is not the mappings "
                                                      f"of a loaded form that extends none")
            own = mapping.inherit(own, base, form, source=path)
        mapping.check(own, form, source=path)
        result[form.id] = own
    return {form_id: result[form_id] for form_id in forms}


def _interpretations(path: Path, instruments: Mapping[str, Instrument]
                     ) -> Mapping[str, interpretation.Meaning]:
    """The interpretation rules of the loaded instruments' scores, cross-checked: a band
    may only test that instrument's scores and, on a coded score, name one of its options.
    Rules for an instrument a clinic did not load are left out, not an error."""
    if not path.exists():
        return MappingProxyType({})
    meanings = interpretation.parse(read_json(path), source=str(path))
    kept = {}
    for instrument in instruments.values():
        score_items = {c.link_id: c for c in instrument.calculations}
        for link_id in score_items:
            meaning = meanings.get(link_id)
            if meaning is None:
                continue
            options = {o["valueCoding"]["code"] for item in instrument.resource["item"]
                       if item.get("linkId") == link_id
                       for o in item.get("answerOption") or [] if "valueCoding" in o}
            for band in meaning.bands:
                unknown = set(band.when) - set(score_items)
                if unknown:
                    raise KnowledgeError(str(path), link_id, f"band {band.code!r} tests "
                                         f"{sorted(unknown)}, not scores of {instrument.id}")
                if options and band.code not in options:
                    raise KnowledgeError(str(path), link_id, f"band {band.code!r} is not an "
                                         f"answer option of {link_id}")
            kept[link_id] = meaning
    return MappingProxyType(kept)


def _check_score_tests(decision: Any, path: Path) -> None:
    """Every outcome-measure band a decision finding tests (``{"score", "band"}``) is a
    band of that score in the interpretation file: a typo would make the finding never
    hold, silently. (A score of an instrument the clinic did not load is allowed: its
    finding is then never known.)"""
    meanings = (interpretation.parse(read_json(path), source=str(path)) if path.exists()
                else {})
    for finding in decision.findings.values():
        for test in predicates.score_tests(finding.when):
            meaning = meanings.get(test.link_id)
            if meaning is None or test.band not in {b.code for b in meaning.bands}:
                raise KnowledgeError(str(path.parent.parent / "decision" / "findings.json"),
                                     finding.id, f"tests band {test.band!r} of score "
                                     f"{test.link_id!r}, which {path.name} does not define")


def init_app(app: Any) -> None:
    """Load the knowledge for a Flask app; a broken file raises and start-up stops."""
    app.extensions[EXTENSION_KEY] = load(app.config["QUESTIONNAIRES_DIR"],
                                         app.config["MAPPINGS_DIR"],
                                         app.config["DECISION_THRESHOLDS"])


def _read_resource(path: Path, resource_type: str) -> dict[str, Any]:
    resource = read_json(path)
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise KnowledgeError(str(path), "resourceType", f"expected {resource_type!r}")
    problems = fhir_models.validate(resource)
    if problems:
        location, _, problem = problems[0].partition(": ")
        raise KnowledgeError(str(path), location, f"not valid FHIR R4: {problem}")
    if resource.get("id") != path.stem:
        raise KnowledgeError(str(path), "id", f"must equal the file name {path.stem!r}")
    return resource


def _check_code_system(resource: Mapping[str, Any], source: str) -> None:
    codes = [c.get("code") for c in resource.get("concept") or []]
    if len(set(codes)) != len(codes):
        raise KnowledgeError(source, "concept", "duplicate codes")
    if resource.get("count") is not None and resource["count"] != len(codes):
        raise KnowledgeError(source, "count", f"says {resource['count']}, has {len(codes)}")


def _check_extension_definition(resource: Mapping[str, Any], source: str) -> None:
    """An extension of ours: its url is ours and named after the file, and the
    differential fixes the same url (a receiver matches extensions on it)."""
    url = f"{t.BASE}/StructureDefinition/{resource['id']}"
    if resource.get("url") != url:
        raise KnowledgeError(source, "url", f"must be {url}")
    if resource.get("type") != "Extension" or resource.get("kind") != "complex-type":
        raise KnowledgeError(source, "type", "only extension definitions are kept here")
    elements = {e.get("id"): e for e in (resource.get("differential") or {}).get("element") or []}
    if (elements.get("Extension.url") or {}).get("fixedUri") != url:
        raise KnowledgeError(source, "differential", f"Extension.url must be fixed to {url}")
    if not (elements.get("Extension.value[x]") or {}).get("type"):
        raise KnowledgeError(source, "differential", "Extension.value[x] needs its type")


def _equivalents(code_system: Mapping[str, Any] | None) -> dict[tuple[str, str], tuple[str, str]]:
    """Standard (system, code) -> (short answer code, display), from 'equivalent'."""
    result: dict[tuple[str, str], tuple[str, str]] = {}
    for concept in (code_system or {}).get("concept") or []:
        for prop in concept.get("property") or []:
            if prop.get("code") == "equivalent":
                coding = prop["valueCoding"]
                result[(coding["system"], coding["code"])] = (concept["code"],
                                                               concept.get("display", ""))
    return result


def _check_invariants(resource: Mapping[str, Any], source: str) -> None:
    for key, link_id, description in invariants.violations(resource)[:1]:
        raise KnowledgeError(source, link_id or "item", f"breaks {key}: {description}")


def _instrument_codings(resource: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(linkId, coding) for every item code and coded option of a Questionnaire."""
    def walk(items: list[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for item in items:
            for coding in [*(item.get("code") or []),
                           *(o["valueCoding"] for o in item.get("answerOption") or []
                             if "valueCoding" in o)]:
                yield item.get("linkId", "item"), coding
            yield from walk(item.get("item") or [])
    return walk(resource.get("item") or [])


def _check_codes_known(codings: Iterable[tuple[str, Mapping[str, Any]]],
                       code_systems: Mapping[str, Mapping[str, Any]], source: str) -> None:
    """Every project code a Questionnaire uses exists, with the same display."""
    own = {cs["url"]: {c["code"]: c.get("display") for c in cs.get("concept") or []}
           for cs in code_systems.values()}
    for link_id, coding in codings:
        system = coding.get("system", "")
        if not system.startswith(t.BASE):
            continue
        if system not in own:
            raise KnowledgeError(source, link_id, f"unknown CodeSystem {system}")
        if coding.get("code") not in own[system]:
            raise KnowledgeError(source, link_id,
                                 f"code {coding.get('code')!r} is not in {system}")
        if coding.get("display") != own[system][coding["code"]]:
            raise KnowledgeError(source, link_id,
                                 f"display of {coding['code']!r} differs from {system}")
