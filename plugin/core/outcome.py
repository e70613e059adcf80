"""OperationOutcome resources from the exception family: one issue per problem.

Answer errors name their linkId twice: as a FHIRPath ``expression`` into the response
(what FHIR tools read) and at the start of ``details.text`` (what people read).
"""
from __future__ import annotations

from typing import Any

from ..errors import AnswerError, InputError, NotFoundError, PluginError


def from_error(error: PluginError) -> dict[str, Any]:
    """The OperationOutcome for an error raised anywhere in the pipeline."""
    if isinstance(error, AnswerError):
        issues = [_issue("error", "invalid", f"{link_id}: {message}",
                         [f"QuestionnaireResponse.repeat(item).where(linkId='{link_id}')"]
                         if not link_id.startswith("(") else None)
                  for link_id, messages in error.errors.items() for message in messages]
    elif isinstance(error, InputError):
        issues = [_issue("error", error.code, message, [expression] if expression else None)
                  for expression, message in error.issues]
    elif isinstance(error, NotFoundError):
        issues = [_issue("error", "not-found", error.message)]
    else:
        issues = [_issue("error", "exception", error.message)]
    return outcome(issues)


def simple(severity: str, code: str, message: str) -> dict[str, Any]:
    """An OperationOutcome with a single issue."""
    return outcome([_issue(severity, code, message)])


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


def _issue(severity: str, code: str, text: str,
           expression: list[str] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": text}}
    if expression:
        issue["expression"] = expression
    return issue
