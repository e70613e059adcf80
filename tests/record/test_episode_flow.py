"""Issue 20's "done when", through the product's own use cases and pages: an initial
exam and a follow-up of one episode, each with a LEFS the patient finished, signed as the
tablet signs them. The follow-up's decision support knows the real elapsed time and the
response to treatment (radicular pain not improving at 7 weeks: MRI and an injection
consultation suggested, citing the visits compared); its review, its signed summary and
handout say what changed since the last visit, with the LEFS change judged against its
MCID; the progress page charts both visits; the patient page lists them by type. The
clinical story is the golden episode ``radicular-plateau-at-7-weeks`` (tests/data)."""
from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

from plugin.adapters import frozen as frozen_store, store as store_mod
from plugin.record import exams, freeze
from tests.record.test_write_audit import BY, SIGNER
from tests.support import pdfs
from tests.support.prom_cases import add_finished, lefs
from tests.support.signin import signed_in

EPISODES = Path(__file__).resolve().parents[1] / "data" / "episodes"
CASE = json.loads((EPISODES / "radicular-plateau-at-7-weeks.json").read_text(encoding="utf-8"))
STRAIN = json.loads((EPISODES / "hamstring-strain-return-to-sport-4-of-7.json")
                    .read_text(encoding="utf-8"))


def _day(moment: dt.datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_follow_up_knows_its_episode_on_screen_on_paper_and_in_the_charts(make_app, kb):
    app = make_app({"WTF_CSRF_ENABLED": False})
    store = store_mod.from_app(app)
    patient = exams.add_patient(store, {k: v for k, v in CASE["patient"].items() if k != "id"},
                                by=BY)
    (initial_visit, follow_up_visit) = CASE["visits"]
    # the case's four weeks between the visits, ending now (the review is read today)
    second_day = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    first_day = second_day - (dt.date.fromisoformat(follow_up_visit["date"])
                              - dt.date.fromisoformat(initial_visit["date"]))
    lefs_change = f"LEFS +12 since {_day(first_day)}: a meaningful improvement"
    cited = f"Pain now 7/10 on {_day(first_day)} (initial exam) -> 7/10 on {_day(second_day)} " \
            "(follow-up)"

    # the initial exam, with its LEFS (40: every item "moderate difficulty")
    exam = exams.begin(store, kb, patient, now=first_day, by=BY)
    exam, _ = exams.save_draft(store, kb.form_for(exam.questionnaire), exam, patient,
                               expected_version=exam.version,
                               answers={**exam.answers, **initial_visit["answers"]},
                               now=first_day, by=BY)
    add_finished(store, kb, exam, patient, lefs({n: 2 for n in range(1, 21)}), now=first_day,
                 by=BY)
    exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
               now=first_day, ehr_base=None, by=BY)
    initial = store.exam(exam.id)

    # four weeks later, the follow-up, begun from the signed exam, with its LEFS (52)
    follow_up = exams.begin_follow_up(store, kb, initial, now=second_day, by=BY)
    assert follow_up.episode_id == initial.id
    follow_up, _ = exams.save_draft(store, kb.form_for(follow_up.questionnaire), follow_up,
                                    patient, expected_version=follow_up.version,
                                    answers={**follow_up.answers, **follow_up_visit["answers"]},
                                    now=second_day, by=BY)
    add_finished(store, kb, follow_up, patient,
                 lefs({n: 3 if n <= 12 else 2 for n in range(1, 21)}), now=second_day, by=BY)

    # the review, before signing: the comparison and the suggestion citing the visits
    client = signed_in(app)
    review = html.unescape(client.get(f"/exams/{follow_up.id}/review").get_data(as_text=True))
    assert "Since last visit" in review
    assert cited in review
    assert lefs_change in review
    since = review[review.index('id="since-last-visit"'):]
    assert "40 → 52" in since[:since.index("</section>")]  # the LEFS in the table too

    exams.sign(store, kb, follow_up, patient, expected_version=follow_up.version,
               signer=SIGNER, now=second_day, ehr_base=None, by=BY)

    # the signed follow-up: elapsed time and the response to treatment in its assessment
    frozen, _ = freeze.read(store, follow_up.id, 1)
    services = {r["service"] for r in frozen.assessment["referrals"]}
    assert {"mri-lumbar-spine", "injection-consultation"} <= services
    assert "spine-surgeon" not in services  # 7 weeks: under the surgical threshold
    (top, *_) = frozen.assessment["differential"]
    assert top["condition"] == "lumbar-radiculopathy"

    # the signed record page shows the comparison as signed
    page = html.unescape(client.get(f"/exams/{follow_up.id}/record").get_data(as_text=True))
    assert 'id="since-last-visit"' in page and cited in page
    assert 'id="since-last-visit"' not in html.unescape(
        client.get(f"/exams/{initial.id}/record").get_data(as_text=True))

    # its documents, rendered from the frozen record
    assert freeze.render_pending(store, worker_id="t", lease_seconds=60) == 2  # both visits
    summary_pdf = frozen_store.document(store, follow_up.id, 1, "summary").content
    assert pdfs.title_of(summary_pdf) == "Posterior thigh pain follow-up: clinician summary"
    summary = _flat(pdfs.text_of(summary_pdf))
    assert "Since last visit" in summary and "Pain now" in summary
    assert "Progress across visits" in summary  # the charts, frozen at the signature
    assert lefs_change in summary
    handout = _flat(pdfs.text_of(frozen_store.document(store, follow_up.id, 1,
                                                       "handout").content))
    for sentence in CASE["expected"]["handout"]:
        assert sentence in handout
    first_summary = _flat(pdfs.text_of(frozen_store.document(store, initial.id, 1,
                                                             "summary").content))
    assert "Since last visit" not in first_summary  # an initial exam starts its episode

    # the patient page and the progress page
    listing = html.unescape(client.get(f"/patients/{patient.id}").get_data(as_text=True))
    assert "Initial exam" in listing and "Follow-up" in listing
    progress = html.unescape(client.get(f"/patients/{patient.id}/progress")
                             .get_data(as_text=True))
    assert lefs_change in progress
    assert progress.count("<svg") >= 3  # SLR angle, pain, LEFS at least


def _signed_episode(store, kb, case) -> tuple[object, object, object]:
    """The case's two visits signed as the tablet signs them, the second as a follow-up
    of the first, their days as in the case and the second today."""
    patient = exams.add_patient(store, {k: v for k, v in case["patient"].items() if k != "id"},
                                by=BY)
    (first, second) = case["visits"]
    today = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    days = [today - (dt.date.fromisoformat(second["date"])
                     - dt.date.fromisoformat(first["date"])), today]
    exam = exams.begin(store, kb, patient, now=days[0], by=BY)
    signed = []
    for n, (visit, when) in enumerate(zip(case["visits"], days)):
        if n:
            exam = exams.begin_follow_up(store, kb, signed[0], now=when, by=BY)
        exam, _ = exams.save_draft(store, kb.form_for(exam.questionnaire), exam, patient,
                                   expected_version=exam.version,
                                   answers={**exam.answers, **visit["answers"]}, now=when, by=BY)
        exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
                   now=when, ehr_base=None, by=BY)
        signed.append(store.exam(exam.id))
    return patient, signed[0], signed[1]


def test_a_hamstring_patient_is_shown_which_return_to_sport_criteria_they_meet(make_app, kb):
    app = make_app({"WTF_CSRF_ENABLED": False})
    store = store_mod.from_app(app)
    _, _, follow_up = _signed_episode(store, kb, STRAIN)
    summary_line = STRAIN["expected"]["return_to_sport"]
    page = html.unescape(signed_in(app).get(f"/exams/{follow_up.id}/record")
                         .get_data(as_text=True))
    checklist = page[page.index('id="return-to-sport"'):]
    checklist = checklist[:checklist.index("</section>")]
    assert summary_line in checklist
    assert not re.search(r"\b(fit|cleared|ready to return)\b", checklist, re.IGNORECASE)
    assert freeze.render_pending(store, worker_id="t", lease_seconds=60) == 2
    summary = _flat(pdfs.text_of(frozen_store.document(store, follow_up.id, 1,
                                                       "summary").content))
    assert "Return to sport: consensus criteria" in summary and summary_line in summary
