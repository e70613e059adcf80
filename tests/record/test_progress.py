"""Progress across visits, read from what each signature stored: the visit list (date,
type, side, top condition), one chart per finding measured at two visits or more (a
line per side), outcome-measure totals with their MCID band and the change in words,
referrals and reported care as dated markers."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from plugin.adapters import observation_store
from plugin.adapters.observation_store import ObservationRecord
from plugin.record import exams, progress
from tests.record.test_write_audit import BY, PATIENT, SIGNER
from tests.support.tablet import ANSWERS

MARCH = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.timezone.utc)
APRIL = dt.datetime(2026, 4, 14, 9, 0, tzinfo=dt.timezone.utc)
MAY = dt.datetime(2026, 5, 26, 9, 0, tzinfo=dt.timezone.utc)
FIRST = {**ANSWERS, "history.affected-side": "left", "pain.current": 7,
         "pain.worst-week": 9, "slr.right.onset-angle": 80,
         "slr.right.response": "none", "history.pt-weeks": 0,
         "history.injections": ["none"]}
SECOND = {**FIRST, "slr.left.onset-angle": 55, "pain.current": 4, "history.pt-weeks": 6,
          "history.injections": ["epidural"]}
THIRD = {**SECOND, "slr.left.onset-angle": 70, "pain.current": 2, "pain.worst-week": 5,
         "history.affected-side": "bilateral"}
PLAN = {"referrals": {"physiotherapy": {"order": True, "priority": "routine"}}}
LEFS = "http://posterior-thigh-exam.org/fhir/CodeSystem/outcome-measures"


def _visit(store, kb, patient, answers, when, plan=None):
    exam = exams.begin(store, kb, patient, now=when, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=answers, now=when, by=BY)
    if plan:
        exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                     impression=plan, by=BY)
    exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
               now=when, ehr_base=None, by=BY)
    return store.exam(exam.id)


def _lefs(store, patient, exam, when, score):
    """A LEFS total as B's signature stores it: a survey Observation of the visit."""
    resource = {"resourceType": "Observation", "id": f"{exam.id}-lefs", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                    "observation-category",
                                          "code": "survey"}]}],
                "code": {"coding": [{"system": LEFS, "code": "lefs-total",
                                     "display": "LEFS total score"}]},
                "subject": {"reference": f"Patient/{patient.id}"},
                "effectiveDateTime": when.isoformat(), "valueInteger": score}
    with store.engine.begin() as conn:
        observation_store.insert_revision(conn, exam.id, 1, patient.id, [ObservationRecord(
            id=f"{exam.id}-lefs", exam_id=exam.id, revision=1, patient_id=patient.id,
            date=when, resource=resource, codes=((LEFS, "lefs-total"),))], latest=1)


def test_the_visit_list_names_date_type_side_and_top_condition(store, kb) -> None:
    patient = exams.add_patient(store, PATIENT, by=BY)
    _visit(store, kb, patient, FIRST, MARCH)
    _visit(store, kb, patient, THIRD, APRIL)
    exams.begin(store, kb, patient, now=MAY, by=BY)  # a draft
    listed = progress.visits(store, kb, patient.id, time_zone="Europe/London")
    assert [(v.kind, v.date, v.side, v.signed) for v in listed[1:]] == [
        ("Initial exam", dt.date(2026, 4, 14), "Both sides", True),
        ("Initial exam", dt.date(2026, 3, 3), "Left", True)]
    assert listed[1].top_condition == "Lumbar radiculopathy (disc-related sciatica)"
    assert not listed[0].signed and listed[0].top_condition is None


def test_charts_per_side_of_what_was_measured_at_two_visits(store, kb) -> None:
    patient = exams.add_patient(store, PATIENT, by=BY)
    first = _visit(store, kb, patient, FIRST, MARCH, PLAN)
    _visit(store, kb, patient, SECOND, APRIL)
    _visit(store, kb, patient, THIRD, MAY)
    made = progress.progress(store, kb, patient.id, time_zone="UTC")
    assert made.enough and len(made.visits) == 3
    titles = [c.title for c in made.charts]
    # the headline measures first, in order; nothing measured once (no slump recorded)
    assert titles[:3] == ["Straight leg raise: angle at symptom onset",
                          "Current pain (0-10)", "Worst pain in the past week (0-10)"]
    slr = made.charts[0]
    assert [s.side for s in slr.series] == ["left", "right"]
    assert [(p.date, p.value) for p in slr.series[0].points] == [
        (dt.date(2026, 3, 3), 40), (dt.date(2026, 4, 14), 55), (dt.date(2026, 5, 26), 70)]
    assert slr.unit == "°" and slr.series[0].band is None  # no sourced MCID for SLR
    assert slr.changes == ("Straight leg raise: angle at symptom onset, left +30 since "
                           "3 March 2026", "Straight leg raise: angle at symptom onset, "
                           "right unchanged since 3 March 2026")
    assert made.charts[1].changes == ("Current pain (0-10) -5 since 3 March 2026",)
    # care as markers: the referral made at the first visit, what the history reported
    assert [(m.date, m.label) for m in made.markers] == [
        (dt.date(2026, 3, 3), "Referral made: Physiotherapy"),
        (dt.date(2026, 4, 14), "Physiotherapy reported (6 weeks so far)"),
        (dt.date(2026, 4, 14), "Injection reported: Epidural steroid injection")]
    assert slr.markers == made.markers
    assert first.id not in slr.svg and first.id not in slr.table  # never an internal id


def test_prom_totals_have_their_mcid_band_and_words(store, kb) -> None:
    patient = exams.add_patient(store, PATIENT, by=BY)
    visits = [_visit(store, kb, patient, a, w)
              for a, w in ((FIRST, MARCH), (SECOND, APRIL), (THIRD, MAY))]
    for exam, when, score in zip(visits, (MARCH, APRIL, MAY), (40, 45, 52)):
        _lefs(store, patient, exam, when, score)
    made = progress.progress(store, kb, patient.id, time_zone="UTC")
    lefs = next(c for c in made.charts if c.title == "LEFS")
    assert lefs.series[0].band == (Decimal(31), Decimal(49))  # 40 ± 9 (Binkley 1999)
    assert lefs.changes == ("LEFS +12 since 3 March 2026: a meaningful improvement",)
    assert "Binkley" in lefs.band_note


def test_a_change_below_the_mcid_says_so(store, kb) -> None:
    patient = exams.add_patient(store, PATIENT, by=BY)
    visits = [_visit(store, kb, patient, a, w) for a, w in ((FIRST, MARCH), (SECOND, APRIL))]
    for exam, when, score in zip(visits, (MARCH, APRIL), (40, 48)):
        _lefs(store, patient, exam, when, score)
    lefs = next(c for c in progress.progress(store, kb, patient.id, time_zone="UTC").charts
                if c.title == "LEFS")
    assert lefs.changes == ("LEFS +8 since 3 March 2026: less than the minimal important "
                            "change (9)",)


def test_one_signed_visit_is_not_enough(store, kb) -> None:
    patient = exams.add_patient(store, PATIENT, by=BY)
    _visit(store, kb, patient, FIRST, MARCH)
    exams.begin(store, kb, patient, now=APRIL, by=BY)
    made = progress.progress(store, kb, patient.id, time_zone="UTC")
    assert not made.enough and made.charts == ()


def test_the_signed_summary_charts_the_visits_up_to_it(sqlite_store, kb, tmp_path) -> None:
    """Frozen at the signature: the first visit's summary has no charts, the second's
    charts both visits (text and drawn pixels of the PDF), and a later visit changes
    neither."""
    from PIL import Image

    from plugin.adapters import frozen
    from plugin.record import freeze
    from tests.support import pdfs

    store = sqlite_store
    patient = exams.add_patient(store, PATIENT, by=BY)
    first = _visit(store, kb, patient, FIRST, MARCH, PLAN)
    second = _visit(store, kb, patient, SECOND, APRIL)
    before = freeze.read(store, second.id, 1)[0].html["summary"]
    _visit(store, kb, patient, THIRD, MAY)
    assert freeze.read(store, second.id, 1)[0].html["summary"] == before  # frozen
    assert freeze.render_pending(store, worker_id="test", lease_seconds=60) == 3
    one = pdfs.text_of(frozen.document(store, first.id, 1, "summary").content)
    assert "Progress across visits" not in one
    pdf = frozen.document(store, second.id, 1, "summary").content
    text = " ".join(pdfs.text_of(pdf).split())
    assert "Progress across visits" in text and "2 signed visits" in text
    assert "Straight leg raise: angle at symptom onset, left +15 since 3 March 2026" in text
    assert "E1: Referral made: Physiotherapy (3 March 2026)" in text
    assert "26 May 2026" not in text  # the later visit is not in a frozen record
    # the charts are drawn: the left series' blue is on the page that charts them
    pages = pdfs.pages_as_png(pdf, tmp_path, "progress", dpi=50)
    texts = pdfs.page_texts(pdf)
    page = next(n for n, t in enumerate(texts) if "Progress across visits" in t)
    data = Image.open(pages[page]).convert("RGB").tobytes()
    blue = sum(1 for n in range(0, len(data), 3) if abs(data[n] - 0x1f) < 40
               and abs(data[n + 1] - 0x5f) < 40 and abs(data[n + 2] - 0xa8) < 40)
    assert blue > 50


def test_a_revision_signed_before_impressions_kept_outcomes_reads_its_frozen_top(
        store, kb) -> None:
    """The top condition of an older revision (no ``outcomes`` in its impression) is
    read from its frozen assessment; one signed before freezing has none."""
    from sqlalchemy import update

    from plugin.adapters.tables import frozen_inputs, revisions

    patient = exams.add_patient(store, PATIENT, by=BY)
    older = _visit(store, kb, patient, FIRST, MARCH)
    oldest = _visit(store, kb, patient, FIRST, APRIL)
    with store.engine.begin() as conn:
        conn.execute(update(revisions).values(impression=None))
        conn.execute(frozen_inputs.delete().where(frozen_inputs.c.exam_id == oldest.id))
    listed = {v.exam_id: v for v in progress.visits(store, kb, patient.id, time_zone="UTC")}
    assert listed[older.id].top_condition == "Lumbar radiculopathy (disc-related sciatica)"
    assert listed[oldest.id].top_condition is None and listed[oldest.id].signed
