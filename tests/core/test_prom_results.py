"""What a visit's outcome-measure scores mean on screen and paper: each score, its band,
the change since the patient's earlier score against the MCID (with its source), and
the instrument's copyright notice; kept as JSON in the frozen record, read back the same."""
from __future__ import annotations

import datetime as dt

from plugin.core import prom_extract, prom_results
from tests.support.prom_cases import lefs, psfs, start_back

MARCH = dt.date(2026, 3, 3)


def _scored(kb, *responses):
    return [(kb.instrument_for(r["questionnaire"]),
             prom_extract.checked(kb.instrument_for(r["questionnaire"]), r)) for r in responses]


def test_a_change_of_at_least_the_mcid_is_meaningful_and_names_its_source(kb) -> None:
    (shown,) = prom_results.results(_scored(kb, lefs({n: 3 for n in range(1, 21)})),
                                    kb.interpretations, earlier={"lefs-total": (MARCH, 48)})
    (total,) = shown.scores
    assert (total.label, total.value, total.band) == ("LEFS total (0-80)", "60", None)
    assert total.change == "LEFS +12 since 3 March 2026: a meaningful improvement"
    assert total.meaningful is True and "Binkley" in total.sources[0]
    assert shown.title == "Lower Extremity Functional Scale (LEFS)"
    assert shown.copyright.startswith("Lower Extremity Functional Scale: Binkley JM")


def test_a_small_change_says_so_and_no_earlier_score_shows_no_change(kb) -> None:
    scored = _scored(kb, psfs([6, 6]))
    (small,) = prom_results.results(scored, kb.interpretations,
                                    earlier={"psfs-mean": (MARCH, 5)})
    assert small.scores[0].change == ("PSFS +1 since 3 March 2026: less than the minimal "
                                      "important change (2)")
    assert small.scores[0].meaningful is False
    (alone,) = prom_results.results(scored, kb.interpretations)
    assert (alone.scores[0].value, alone.scores[0].change, alone.scores[0].sources) == \
        ("6", None, ())


def test_start_back_shows_each_score_and_its_risk_band_with_the_bands_source(kb) -> None:
    (shown,) = prom_results.results(_scored(kb, start_back({1, 2, 3, 4}, "moderately")),
                                    kb.interpretations)
    assert [(s.link_id, s.value) for s in shown.scores] == [
        ("sbst-total", "4"), ("sbst-psychosocial", "0"), ("sbst-risk", "Medium")]
    risk = shown.scores[-1]
    assert (risk.band, risk.band_code) == ("medium risk", "LA8982-6")
    assert "keele.ac.uk/sbst" in risk.sources[0]
    assert "the copyright statement must be kept" in shown.copyright
    assert prom_results.bands([shown]) == {"sbst-risk": "LA8982-6"}


def test_an_unscorable_response_shows_no_score_and_no_band(kb) -> None:
    (shown,) = prom_results.results(_scored(kb, lefs({n: 4 for n in range(1, 20)})),
                                    kb.interpretations)
    assert shown.scores == () and prom_results.bands([shown]) == {}


def test_the_frozen_form_reads_back_the_same(kb) -> None:
    shown = prom_results.results(_scored(kb, lefs({n: 1 for n in range(1, 21)}),
                                         start_back({5, 6, 7, 8}, "extremely")),
                                 kb.interpretations, earlier={"lefs-total": (MARCH, 40)})
    stored = prom_results.as_json(shown)
    assert prom_results.from_json(stored) == shown
    assert stored[0]["scores"][0]["change"] == ("LEFS -20 since 3 March 2026: a meaningful "
                                                "deterioration")
