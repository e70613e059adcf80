"""What a score means, hand-checked against the published thresholds: LEFS MCID 9
(Binkley 1999), PSFS 2 on the mean (shared/outcomes.md), STarT Back bands (Keele)."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.core.interpretation import interpret, parse
from plugin.errors import KnowledgeError

MARCH = dt.date(2026, 3, 3)
FILE = Path(DEFAULTS["MAPPINGS_DIR"]) / "outcomes" / "interpretation.json"


@pytest.fixture(scope="module")
def meanings():
    return knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"]).interpretations


@pytest.mark.parametrize(("now", "before", "meaningful", "text"), [
    (52, 40, True, "LEFS +12 since 3 March 2026: a meaningful improvement"),
    (49, 40, True, "LEFS +9 since 3 March 2026: a meaningful improvement"),       # on the MCID
    (48, 40, False, "LEFS +8 since 3 March 2026: less than the minimal important change (9)"),
    (50, 40, True, "LEFS +10 since 3 March 2026: a meaningful improvement"),      # above
    (31, 40, True, "LEFS -9 since 3 March 2026: a meaningful deterioration"),
    (40, 40, False, "LEFS 0 since 3 March 2026: less than the minimal important change (9)"),
])
def test_lefs_change_against_its_mcid(meanings, now, before, meaningful, text) -> None:
    result = interpret(meanings["lefs-total"], {"lefs-total": now}, earlier=(MARCH, before))
    assert (result.change, result.meaningful, result.text) == (now - before, meaningful, text)


@pytest.mark.parametrize(("now", "before", "meaningful", "text"), [
    (6.0, 4.0, True, "PSFS +2 since 3 March 2026: a meaningful improvement"),
    (5.8, 4.0, False, "PSFS +1.8 since 3 March 2026: less than the minimal important change (2)"),
    (6.2, 4.0, True, "PSFS +2.2 since 3 March 2026: a meaningful improvement"),
])
def test_psfs_mean_change_against_its_mcid(meanings, now, before, meaningful, text) -> None:
    result = interpret(meanings["psfs-mean"], {"psfs-mean": now}, earlier=(MARCH, before))
    assert (result.meaningful, result.text) == (meaningful, text)


def test_without_an_earlier_score_there_is_no_change(meanings) -> None:
    result = interpret(meanings["lefs-total"], {"lefs-total": 52})
    assert (result.change, result.meaningful, result.text) == (None, None, "LEFS 52")


@pytest.mark.parametrize(("total", "psychosocial", "band"), [
    (0, 0, "low"), (3, 3, "low"),          # total ≤ 3: low, whatever else
    (4, 3, "medium"), (9, 3, "medium"),    # subscale just below 4
    (4, 4, "high"), (9, 5, "high"),
])
def test_start_back_band_edges(meanings, total, psychosocial, band) -> None:
    result = interpret(meanings["sbst-risk"], {"sbst-total": total,
                                               "sbst-psychosocial": psychosocial})
    # the band's code is LOINC's answer for that risk level (LL3578-3), as the record sends it
    assert result.band.code == {"low": "LA9194-7", "medium": "LA8982-6", "high": "LA9193-9"}[band]
    assert result.text == f"STarT Back: {band} risk"


def test_every_threshold_names_its_source(meanings) -> None:
    assert set(meanings) == {"lefs-total", "psfs-mean", "sbst-risk"}
    for meaning in meanings.values():
        assert meaning.mcid is None or re.search(r"\b(19|20)\d\d\b", meaning.mcid_source)
        assert not meaning.bands or "keele" in meaning.bands_source.lower()


@pytest.mark.parametrize(("key", "problem"), [
    ("mcid_source", "an MCID needs its source"), ("label", "needs a label")])
def test_an_mcid_without_source_or_label_stops_loading(key, problem) -> None:
    data = json.loads(FILE.read_text(encoding="utf-8"))
    del data["scores"]["lefs-total"][key]
    with pytest.raises(KnowledgeError, match=problem):
        parse(data, source=str(FILE))


def test_bands_without_source_stop_loading() -> None:
    data = json.loads(FILE.read_text(encoding="utf-8"))
    del data["scores"]["sbst-risk"]["bands_source"]
    with pytest.raises(KnowledgeError, match="bands need their source"):
        parse(data, source=str(FILE))


def test_a_band_naming_an_unknown_score_stops_loading(tmp_path) -> None:
    import shutil
    mdir = tmp_path / "mappings"
    shutil.copytree(DEFAULTS["MAPPINGS_DIR"], mdir)
    data = json.loads(FILE.read_text(encoding="utf-8"))
    data["scores"]["sbst-risk"]["bands"][0]["when"] = {"sbst-totl": {"max": 3}}
    (mdir / "outcomes" / "interpretation.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(KnowledgeError, match="sbst-totl"):
        knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], mdir)
