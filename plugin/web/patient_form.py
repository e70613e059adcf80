"""The standalone "new patient" form: checked by marshmallow, turned into a FHIR Patient.

Standalone mode is for clinics without an EHR launch; with SMART the EHR supplies
the patient instead. Messages are written for the person at the tablet.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from ..core import patient as patient_mod


@dataclass(frozen=True)
class Result:
    """Field messages (empty when valid) and the cleaned values."""

    errors: Mapping[str, list[str]]
    values: Mapping[str, Any] = field(default_factory=dict)

    def resource(self, identifier_system: str = "") -> dict[str, Any]:
        """The FHIR Patient for valid input."""
        name: dict[str, Any] = {"family": self.values["family"]}
        if self.values.get("given"):
            name["given"] = self.values["given"].split()
        patient: dict[str, Any] = {"resourceType": "Patient", "name": [name],
                                   "birthDate": self.values["birth_date"].isoformat()}
        if self.values.get("identifier"):
            identifier = {"value": self.values["identifier"]}
            if identifier_system:
                identifier["system"] = identifier_system
            patient["identifier"] = [identifier]
        return patient


def _text(max_length: int, required: bool) -> fields.String:
    return fields.String(required=required, error_messages={"required": "Required."},
                         validate=validate.Length(
        min=1 if required else 0, max=max_length,
        error=f"At most {max_length} characters." if not required else
        f"Required, at most {max_length} characters."))


class PatientInput(Schema):
    FIELDS = ("family", "given", "birth_date", "identifier")

    family = _text(100, True)
    given = _text(100, False)
    birth_date = fields.Date(required=True, error_messages={
        "invalid": "Enter a date as YYYY-MM-DD.", "required": "Required."})
    identifier = _text(64, False)

    def __init__(self, *, today: dt.date, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.today = today

    def validate_form(self, values: Mapping[str, str]) -> Result:
        """Check the submitted fields; every problem is reported at once."""
        cleaned = {k: v.strip() for k, v in values.items() if isinstance(v, str)}
        cleaned = {k: v for k, v in cleaned.items() if v}
        try:
            return Result({}, self.load(cleaned))
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {}
            return Result({k: list(v) if isinstance(v, list) else [str(v)]
                           for k, v in messages.items()})

    @validates("birth_date")
    def _plausible(self, born: dt.date, **kwargs: Any) -> None:
        if born > self.today:
            raise ValidationError("The birth date is in the future.")
        if patient_mod.age_on(born.isoformat(), self.today) > patient_mod.MAX_AGE:
            raise ValidationError(f"That is over {patient_mod.MAX_AGE} years ago.")
