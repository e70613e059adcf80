"""The patient's progress page (``GET /patients/<id>/progress``): a chart per finding
measured at two visits or more, each with its data table and the change in words.

A route of the ``exam`` blueprint (endpoint ``exam.progress``), kept apart from the exam
pages: it reads across visits (``record.progress``), never one exam. Same access as the
patient page (any signed-in user); the read is audited before anything is rendered: a
search of the patient's Observations, what the page charts (one event, BALP
PatientQuery, as the FHIR API's search leaves).
"""
from __future__ import annotations

from flask import current_app, render_template

from ..record import progress as progress_mod
from .audit import search_of
from .current import kb as _kb, store as _store
from .exam import _patient, bp


@bp.get("/patients/<patient_id>/progress")
def progress(patient_id: str) -> str:
    record = _patient(patient_id)
    search_of("Observation", [record.id])
    made = progress_mod.progress(_store(), _kb(), record.id,
                                 time_zone=current_app.config["TIME_ZONE"])
    return render_template("exam/progress.html", patient=record, progress=made)
