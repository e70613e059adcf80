"""The tablet's pages driven as the tablet drives them, through a Flask test client:
register a patient, start an exam, autosave a page. One home for what many web tests
begin with (each test file used to carry its own copy)."""
from __future__ import annotations

import re
import uuid
from typing import Any

#: A straight-leg raise on the left reproducing leg pain below the knee at 40°.
SLR = {"slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee"}


def version_of(page: str) -> int:
    """The exam's version as an exam page hands it to its script (for If-Match)."""
    found = re.search(r'"version": (\d+)', page)
    assert found, "the page carries no exam version"
    return int(found.group(1))


def start_exam(client: Any, *, family: str = "Silva", given: str = "Ana",
               birth_date: str = "1986-03-14", identifier: str | None = None
               ) -> tuple[str, int]:
    """A new patient (a fresh MRN unless ``identifier``: an MRN is on file once; the
    same name and birth date as a patient on file is confirmed as someone else) and a
    new exam for them; the exam's id and version."""
    patient = client.post("/patients", data={
        "family": family, "given": given, "birth_date": birth_date,
        "identifier": identifier or f"MRN-{uuid.uuid4().hex[:8]}",
        "confirm": "different-person"})
    assert patient.status_code == 303, patient.get_data(as_text=True)
    exam = client.post(patient.headers["Location"] + "/exams")
    assert exam.status_code == 303, exam.get_data(as_text=True)
    return exam.headers["Location"].split("/")[2], version_of(
        client.get(exam.headers["Location"]).get_data(as_text=True))


def save(client: Any, exam_id: str, version: int, answers: Any, section: str = "slr",
         **extra: Any) -> Any:
    """One autosave of a page (``PUT /exams/<id>/draft`` with If-Match); the response."""
    return client.put(f"/exams/{exam_id}/draft", headers={"If-Match": f'"{version}"'},
                      json={"section": section, "answers": answers, **extra})


def ready_exam(client: Any, answers: Any = None, section: str = "slr",
               **patient: str) -> tuple[str, int]:
    """A new exam with one page saved (by default the straight-leg raise ``SLR``); its id
    and the version after the save."""
    exam_id, version = start_exam(client, **patient)
    saved = save(client, exam_id, version, SLR if answers is None else answers, section)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    return exam_id, saved.get_json()["version"]
