"""The R4 Questionnaire invariants (que-*), evaluated with FHIRPath at start-up.

fhir.resources checks structure but not invariants (shared/fhir.md §1.3), so a display
item marked ``required`` or an item with both ``answerOption`` and ``initial`` would
otherwise load. The expressions are the R4 4.0.1 StructureDefinition's, each applied to
every item; ``trace()`` calls are dropped (they only log).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

#: key -> (human description, FHIRPath that must hold for each item)
ITEM_INVARIANTS = {
    "que-1": ("group items must have nested items; display items cannot",
              "(type='group' implies item.empty().not()) and "
              "(type='display' implies item.empty())"),
    "que-3": ("display items cannot have a code", "type!='display' or code.empty()"),
    "que-4": ("not both answerOption and answerValueSet",
              "answerOption.empty() or answerValueSet.empty()"),
    "que-5": ("only choice-like items may have answerOption or answerValueSet",
              "(type ='choice' or type = 'open-choice' or type = 'decimal' or type = 'integer' "
              "or type = 'date' or type = 'dateTime' or type = 'time' or type = 'string' "
              "or type = 'quantity') or (answerValueSet.empty() and answerOption.empty())"),
    "que-6": ("display items cannot be required or repeat",
              "type!='display' or (required.empty() and repeats.empty())"),
    "que-7": ("enableWhen with operator 'exists' needs a boolean answer",
              "enableWhen.all(operator = 'exists' implies (answer is Boolean))"),
    "que-8": ("groups and display items cannot have initial values",
              "(type!='group' and type!='display') or initial.empty()"),
    "que-9": ("display items cannot be readOnly", "type!='display' or readOnly.empty()"),
    "que-10": ("maxLength only for simple types",
               "(type in ('boolean' | 'decimal' | 'integer' | 'string' | 'text' | 'url' | "
               "'open-choice')) or maxLength.empty()"),
    "que-11": ("no initial value together with answerOption",
               "answerOption.empty() or initial.empty()"),
    "que-12": ("several enableWhen need enableBehavior",
               "enableWhen.count() > 2 implies enableBehavior.exists()"),
    "que-13": ("several initial values only on repeating items",
               "repeats=true or initial.count() <= 1"),
}
UNIQUE_LINK_IDS = "Questionnaire.descendants().linkId.isDistinct()"  # que-2


@lru_cache(maxsize=None)
def _compiled() -> dict[str, Callable[..., list[Any]]]:
    compiled = {key: compile_fhirpath(f"Questionnaire.repeat(item).where(({expr}).not()).linkId",
                                      models["r4"])
                for key, (_, expr) in ITEM_INVARIANTS.items()}
    compiled["que-2"] = compile_fhirpath(UNIQUE_LINK_IDS, models["r4"])
    return compiled


def violations(questionnaire: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every (invariant key, linkId, description) the Questionnaire breaks."""
    found: list[tuple[str, str, str]] = []
    compiled = _compiled()
    if compiled["que-2"](dict(questionnaire)) != [True]:
        found.append(("que-2", "", "linkIds must be unique"))
    for key, (description, _) in ITEM_INVARIANTS.items():
        for link_id in compiled[key](dict(questionnaire)):
            found.append((key, str(link_id), description))
    return found
