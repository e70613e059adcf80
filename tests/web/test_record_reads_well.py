"""The signed record as a clinician reads it, over HTTP: times in the clinic's zone
(``TIME_ZONE``) on the record page, its revision list, the patient's exam list and the
summary PDF; the amended summary's revision, reason and signer; the handout's header
and the clinic's contact line; a bad zone stops start-up."""
from __future__ import annotations

import pytest

from plugin.core import datetimes
from plugin.errors import ConfigError
from tests.support import pdfs, tablet
from tests.support.signin import signed_in

CONTACT = "Physiotherapy clinic, 01234 567890, weekdays 8am to 6pm"


def _june(make_app, kb, form, zone: str):
    """Ana's exam signed on 1 May, amended on 1 June 10:00 UTC (British Summer Time:
    11:00 in London)."""
    app = make_app({"WTF_CSRF_ENABLED": False, "TIME_ZONE": zone, "CLINIC_CONTACT": CONTACT})
    ana = tablet.patient(app)
    june = tablet.amended(app, kb, form, tablet.sign(app, kb, tablet.draft(app, form, ana),
                                                     ana, tablet.MAY), ana, tablet.JUNE)
    return signed_in(app), ana, june


@pytest.mark.parametrize("zone, shown", [("Europe/London", "2026-06-01 11:00 BST"),
                                         ("UTC", "2026-06-01 10:00 UTC")])
def test_times_are_shown_in_the_clinic_time_zone(make_app, kb, form, zone, shown) -> None:
    client, ana, june = _june(make_app, kb, form, zone)
    page = client.get(f"/exams/{june.id}/record").get_data(as_text=True)
    assert f"on {shown}" in page  # the banner of the revision shown
    revisions = page[page.index('id="revisions"'):]
    assert f"Revision 2</a>: amended, Dr Lee, {shown}" in revisions
    other = "2026-06-01 10:00 UTC" if zone != "UTC" else "11:00 BST"
    assert other not in page
    summary = " ".join(pdfs.text_of(client.get(f"/exams/{june.id}/summary.pdf").data).split())
    assert f"Revision 2, amended · Signed by Dr Lee on {shown}" in summary
    assert "Reason for the amendment: Angle re-measured" in summary
    exams = client.get(f"/patients/{ana.id}").get_data(as_text=True)
    started = datetimes.local(june.created, zone)
    assert f"Exam started {started}" in exams and started.endswith(
        "UTC" if zone == "UTC" else ("GMT", "BST"))


def test_the_record_page_names_history_and_revisions_apart(make_app, kb, form) -> None:
    client, _, june = _june(make_app, kb, form, "UTC")
    page = client.get(f"/exams/{june.id}/record").get_data(as_text=True)
    headings = [h for h in ("<h2 id=\"revisions-title\">Revisions</h2>", ">History<")
                if h in page]
    assert headings == ['<h2 id="revisions-title">Revisions</h2>', ">History<"]
    assert page.count(">History<") == 1  # the clinical history, once
    assert page.count(">Revisions<") == 1


def test_the_record_page_marks_abnormal_findings_with_a_key(make_app, kb, form) -> None:
    client, _, june = _june(make_app, kb, form, "UTC")
    page = client.get(f"/exams/{june.id}/record").get_data(as_text=True)
    assert "▲ bold: abnormal or positive finding" in page
    # pain below the knee on the SLR is positive; the "pop" (yes) is a positive answer
    assert '<strong class="abn">▲&nbsp;Familiar leg pain below the knee</strong>' in page
    assert '<strong class="abn">▲&nbsp;Yes</strong>' in page
    assert '<strong class="abn">▲&nbsp;55°' not in page  # an angle is not judged
    # a single value spans the Left and Right columns
    assert '<td colspan="2" class="both"><strong class="abn">▲&nbsp;Yes</strong></td>' in page


def test_the_handout_names_the_patient_date_side_and_clinic(make_app, kb, form) -> None:
    client, _, june = _june(make_app, kb, form, "Europe/London")
    for path in ("handout.pdf", "handout.pdf?large=1"):
        text = " ".join(pdfs.text_of(client.get(f"/exams/{june.id}/{path}").data).split())
        assert "Name: Ana Silva" in text, text[:300]
        assert "Date: 1 June 2026" in text  # the amended record's date, in the clinic's zone
        assert f"Questions? Contact us: {CONTACT}" in text


@pytest.mark.parametrize("zone", ["Europe/Lodnon", "", "GMT+1 ", "../etc/passwd"])
def test_a_time_zone_that_is_not_an_iana_name_stops_start_up(make_app, zone) -> None:
    with pytest.raises(ConfigError, match="TIME_ZONE"):
        make_app({"TIME_ZONE": zone})
