"""Ranking between competing clusters: a diagnosis of exclusion (deep gluteal syndrome,
clinical.md 3.5) ranks below a competitor whose specific cluster is positive unless its
score is higher by the margin the knowledge sets; both stay listed, with the reason in
words."""
from __future__ import annotations

import re
from dataclasses import replace

from plugin.decision import assessment, facts

#: Deep buttock and sit-bone pain on sitting; the sciatic notch and the sit bone both
#: tender; piriformis tests and the modified bent-knee stretch both positive.
MIXED = {"history.affected-side": ("right",), "history.onset": ("gradual",),
         "history.pain-location": ("deep-buttock", "sit-bone"),
         "history.aggravating": ("sitting",),
         "palpation.sciatic-notch.right": ("reproduces-familiar-pain",),
         "palpation.ischial-tuberosity.right": ("tender",),
         "deep-gluteal-tests.seated-piriformis.right": ("positive",),
         "deep-gluteal-tests.fair.right": ("positive",),
         "hamstring-tests.modified-bent-knee-stretch.right": ("positive",),
         "slr.right.response": ("buttock-pain",)}


def _ranked(knowledge, answers):
    result = assessment.assess(knowledge, facts.from_answers(answers, age=40))
    return {c.condition.id: c for c in result.differential}, result


def _with_margin(kb, margin):
    conditions = tuple(
        replace(c, exclusion=replace(c.exclusion, margin=margin)) if c.exclusion else c
        for c in kb.decision.conditions)
    return replace(kb.decision, conditions=conditions)


def test_deep_gluteal_yields_to_a_positive_hamstring_origin_cluster(kb) -> None:
    by_id, result = _ranked(kb.decision, MIXED)
    dgs, pht = by_id["deep-gluteal-syndrome"], by_id["proximal-hamstring-tendinopathy"]
    assert dgs.score > pht.score and dgs.score - pht.score < 1.1  # ahead, within the margin
    assert (pht.rank, dgs.rank) == (1, 2) and dgs.suggested  # both still shown
    note = dgs.ranking_note
    assert note and "Proximal hamstring tendinopathy" in note and "diagnosis of exclusion" in note
    assert "Hamstring-origin cluster" in note and "1.1" in note
    d = kb.decision
    ids = {*d.findings, *(c.id for c in d.conditions), *(r.id for r in d.rules), *d.services}
    assert not [i for i in ids if re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", note)]
    assert pht.ranking_note is None
    entry = result.as_json()["differential"][1]
    assert entry["condition"] == "deep-gluteal-syndrome" and entry["ranking_note"] == note
    assert set(dgs.condition.exclusion.citations) <= set(entry["citations"])


def test_the_margin_comes_from_the_knowledge(kb) -> None:
    by_id, _ = _ranked(_with_margin(kb, 0.3), MIXED)  # DGS is ahead by more than 0.3
    assert by_id["deep-gluteal-syndrome"].rank == 1
    assert by_id["deep-gluteal-syndrome"].ranking_note is None


def test_without_the_competitors_cluster_the_scores_decide(kb) -> None:
    answers = {k: v for k, v in MIXED.items()
               if k != "hamstring-tests.modified-bent-knee-stretch.right"}
    by_id, _ = _ranked(kb.decision, answers)
    assert by_id["deep-gluteal-syndrome"].rank == 1
    assert by_id["deep-gluteal-syndrome"].ranking_note is None


def test_the_reason_reaches_the_clinician_summary_text(kb) -> None:
    from plugin.decision import summary
    _, result = _ranked(kb.decision, MIXED)
    text = summary.render(result)
    assert "ranking: Ranked below Proximal hamstring tendinopathy" in text
