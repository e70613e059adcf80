"""The exception family. Each error keeps its cause and names where it happened.

Core modules raise these; each edge renders them once: an OperationOutcome for the
FHIR API, a message and a non-zero exit for the CLI, field messages for the tablet.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class PluginError(Exception):
    """Base class: a message for people plus the original exception, if any."""

    def __init__(self, message: str, *, original_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.original_error = original_error


class KnowledgeError(PluginError):
    """A questionnaire or mapping file is broken; start-up must stop.

    ``source`` is the file, ``path`` the location inside it (``item[3].linkId``), so a
    reviewer can go straight to the fault.
    """

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path or '(root)'}: {problem}")
        self.source = source
        self.path = path
        self.problem = problem


class ConfigError(PluginError):
    """A setting is unusable (``TIME_ZONE`` not an IANA name, ...); start-up must stop."""


class InputError(PluginError):
    """The request as a whole is unusable: malformed JSON, wrong resourceType, ...

    ``issues`` lists (expression, message) pairs; the expression points into the
    request (FHIRPath-like) when a location is known.
    """

    def __init__(self, message: str, *, expression: str | None = None,
                 issues: Sequence[tuple[str | None, str]] = (),
                 status: int = 400, code: str = "invalid") -> None:
        super().__init__(message)
        self.issues = tuple(issues) or ((expression, message),)
        self.status = status
        self.code = code


class NotFoundError(PluginError):
    """A resource the caller named does not exist (unknown Questionnaire, CodeSystem...)."""


class GoneError(NotFoundError):
    """The resource existed and was served, but is no longer current (an amendment
    removed it); its earlier versions stay readable. HTTP 410."""


class ConflictError(PluginError):
    """A write was based on a version that is no longer current (optimistic locking).

    ``current`` is the version now stored, so the edge can tell the caller what to
    reload; nothing was written.
    """

    def __init__(self, message: str, *, current: int | None = None) -> None:
        super().__init__(message)
        self.current = current


class DuplicatePatientError(PluginError):
    """A new patient looks like one already on file. ``same_identifier``: patients with
    the identifier (always refused: an MRN names one person); ``same_person``: patients
    with the same name and birth date (added only once the person at the tablet
    confirms it is someone else)."""

    def __init__(self, message: str, *, same_identifier: Sequence[Any] = (),
                 same_person: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.same_identifier = tuple(same_identifier)
        self.same_person = tuple(same_person)


class LockedError(PluginError):
    """The record is signed: it can only be amended, with a reason."""


class UnavailableError(PluginError):
    """Something the request depends on cannot be used right now (the audit trail cannot
    be written): nothing was done or served, and the request may be retried later."""


class AnswerError(PluginError):
    """Answers failed validation. ``errors`` maps each linkId to all of its messages.

    Every problem is collected before raising, so the clinician fixes them in one pass.
    """

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors = {link_id: list(messages) for link_id, messages in sorted(errors.items())}
        count = sum(len(m) for m in self.errors.values())
        super().__init__(f"{count} problem(s) in the answers: " + "; ".join(
            f"{link_id}: {' '.join(msgs)}" for link_id, msgs in self.errors.items()))
