"""OperationOutcome resources from the exception family: one issue per problem.

Every edge that speaks FHIR renders errors through here, so an integrator sees the same
shape whichever way a problem arose. Answer errors name their linkId twice: as a FHIRPath
``expression`` into the response (what FHIR tools read) and at the start of
``details.text`` (what people read, ``"slr.left.onset-angle: 95 is out of range"``).
"""
from __future__ import annotations

from typing import Any, Literal

from ..errors import (AnswerError, GoneError, InputError, NotFoundError, PluginError,
                      UnavailableError)

Severity = Literal["fatal", "error", "warning", "information"]


def from_error(error: PluginError) -> dict[str, Any]:
    """The OperationOutcome for an error raised anywhere in the pipeline."""
    if isinstance(error, AnswerError):
        issues = [issue("error", "invalid", f"{link_id}: {message}", answer_expression(link_id))
                  for link_id, messages in error.errors.items() for message in messages]
    elif isinstance(error, InputError):
        issues = [issue("error", error.code, message, expression)
                  for expression, message in error.issues]
    elif isinstance(error, GoneError):
        issues = [issue("error", "deleted", error.message)]
    elif isinstance(error, NotFoundError):
        issues = [issue("error", "not-found", error.message)]
    elif isinstance(error, UnavailableError):
        issues = [issue("error", "transient", error.message)]
    else:
        issues = [issue("error", "exception", error.message)]
    return outcome(issues)


def information(message: str, *, severity: Literal["information", "warning"] = "information",
                ) -> dict[str, Any]:
    """An OperationOutcome that reports without failing (SDC: "nothing to extract")."""
    return outcome([issue(severity, "informational", message)])


def simple(severity: Severity, code: str, message: str) -> dict[str, Any]:
    """An OperationOutcome with a single issue and no location."""
    return outcome([issue(severity, code, message)])


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap issues in an OperationOutcome resource."""
    return {"resourceType": "OperationOutcome", "issue": issues}


def issue(severity: Severity, code: str, text: str,
          expression: str | None = None) -> dict[str, Any]:
    """One OperationOutcome.issue; ``text`` goes to ``details.text``, read by people."""
    result: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": text}}
    if expression:
        result["expression"] = [expression]
    return result


def answer_expression(link_id: str) -> str | None:
    """FHIRPath selecting the item ``link_id`` at any depth of a QuestionnaireResponse.

    ``repeat(item)``, not ``item``: questions sit inside groups, and ``item.where(...)``
    would only see the top level. Pseudo-keys such as ``(answers)`` (the input as a
    whole) have no item to point at and get no expression.
    """
    if link_id.startswith("("):
        return None
    quoted = link_id.replace("\\", "\\\\").replace("'", "\\'")
    return f"QuestionnaireResponse.repeat(item).where(linkId='{quoted}')"
