"""eval/retrieval.py, the one retrieval evaluation of the CLI and bench/recall.py, on hand-made rankings."""
from __future__ import annotations

import pytest

from eval.datasets import QAItem
from eval.retrieval import gold_retrieval_items, run_retrieval, summarize_retrieval

ITEMS = [
    QAItem(id="q1", question="heads?", answer="8", arxiv_id="A", evidence=("uses 8 heads",), kind="fact"),
    QAItem(id="q2", question="both?", answer="x", arxiv_id="B", evidence=("first part", "second part"),
           kind="synthesis"),
    QAItem(id="q3", question="missed?", answer="y", arxiv_id="C", evidence=("never found",), kind="fact"),
    QAItem(id="u1", question="GPT-4 size?", kind="unanswerable"),
]
RANKINGS = {  # question -> (arxiv id, passage) best first
    "heads?": [("A", "intro"), ("A", "The model uses 8 heads.")],  # paper at 1, evidence at 2
    "both?": [("X", "other"), ("B", "the first part here")] + [("B", "filler")] * 3 + [("B", "a second part")],
    "missed?": [("X", "other")] * 10,  # neither paper nor evidence
}


def test_every_measure_by_construction() -> None:
    items = gold_retrieval_items(ITEMS)
    assert [i.id for i in items] == ["q1", "q2", "q3"]  # the unanswerable one has nothing to retrieve
    seen = []
    results = run_retrieval(items, lambda q: RANKINGS[q], on_question=lambda r: seen.append(r.qid))
    assert seen == ["q1", "q2", "q3"] and [r.scores.evidence_ranks for r in results] == [(2,), (2, 6), (None,)]
    s = summarize_retrieval(results, ks=(1, 5, 10))
    assert s["questions"] == 3
    assert s["paper_recall@1"] == pytest.approx(1 / 3) and s["paper_recall@5"] == pytest.approx(2 / 3)
    assert s["evidence_recall@1"] == 0.0
    assert s["evidence_recall@5"] == pytest.approx((1 + 0.5 + 0) / 3)  # q2 holds one of its two strings by 5
    assert s["evidence_any@5"] == pytest.approx(2 / 3) and s["evidence_all@5"] == pytest.approx(1 / 3)
    assert s["evidence_all@10"] == pytest.approx(2 / 3)
    assert s["paper_mrr"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert s["evidence_mrr"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert s["p50_ms"] >= 0.0


def test_no_questions_is_no_division_by_zero() -> None:
    assert summarize_retrieval([], ks=(1,)) == {"questions": 0}
