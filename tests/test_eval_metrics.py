"""Metrics on hand-made cases whose scores are known by construction."""
from __future__ import annotations

import re

import pytest

from eval.judge import JudgeVerdict
from eval.metrics import (abstention_ok, claims_of, evidence_hit, recall_at_k, reciprocal_rank, retrieval_scores,
                          score_citations, score_correctness, score_faithfulness, token_f1)
from ingest.parse import normalize_text

P1 = "The Transformer uses 8 attention heads in the base model."
P2 = "Training took 3.5 days on 8 P100 GPUs."
P3 = "Dropout of 0.1 is applied to every sub-layer."


class WordJudge:
    """Supported iff every word of the claim occurs in the passages: exact and predictable."""

    def __init__(self):
        self.calls = []

    def support(self, passages, claim):
        self.calls.append((tuple(passages), claim))
        words = set(re.findall(r"[\w.]+", " ".join(passages).lower()))
        need = {w.strip(".") for w in re.findall(r"[\w.]+", claim.lower())} - {"", "and", "it"}
        return JudgeVerdict(supported=all(w in words or w + "." in words for w in need))

    def correct(self, question, gold, answer):
        return JudgeVerdict(supported=gold.lower() in answer.lower())


class BrokenJudge:
    def support(self, passages, claim):
        return JudgeVerdict(supported=None, error="malformed verdict")


# --------------------------------------------------------------------------- retrieval

def test_evidence_hit_whitespace_and_containment():
    chunk = "As shown below,\nthe model uses   8 attention\theads in the base model. More text."
    assert evidence_hit(chunk, "uses 8 attention heads in the base model.")
    assert not evidence_hit(chunk, "uses 16 attention heads")
    assert not evidence_hit(chunk, "Uses 8 attention heads")  # no lowercasing: verbatim strings
    # A chunk shorter than the evidence that lies inside it counts.
    assert evidence_hit("8 attention heads", "the model uses 8 attention heads in the base model")


def test_evidence_hit_chunk_boundary_overlap():
    evidence = "the attention weights are scaled by one over the square root of the key dimension d_k"
    head = evidence[:60]
    assert evidence_hit("Earlier sentences of the chunk. " + head, evidence)  # > half of it
    assert evidence_hit(evidence[-50:] + " Later sentences of the chunk.", evidence)
    assert not evidence_hit("Earlier sentences of the chunk. " + evidence[:20], evidence)
    assert not evidence_hit("Earlier. " + evidence[10:60] + " later.", evidence)  # inside, not at an edge


def test_evidence_hit_ligature_normalised_when_pipeline_cleans():
    evidence = "The routing implementation is simpliﬁed and communication costs are reduced."
    cleaned = normalize_text(evidence)
    assert cleaned == evidence.replace("ﬁ", "fi")  # chunks are cleaned so; the gold evidence is not
    assert evidence_hit("x " + cleaned + " y", evidence)


def test_recall_and_mrr_helpers():
    assert recall_at_k([1, None], 5) == 0.5
    assert recall_at_k([3, 7], 5) == 0.5
    assert recall_at_k([], 5) == 0.0
    assert reciprocal_rank([None, 4, 2]) == 0.5
    assert reciprocal_rank([None]) == 0.0


def test_retrieval_scores_synthesis_needs_both():
    passages = [("other", "unrelated"), ("2302.13971", "we used 2048 A100-80GB for 5 months"),
                ("2302.13971", "a total emission of 1,015 tCO2eq.")]
    s = retrieval_scores("2302.13971", ["2048 A100-80GB for 5 months", "1,015 tCO2eq"], passages)
    assert s.paper_rank == 2 and s.evidence_ranks == (2, 3)
    assert s.paper_recall(1) == 0.0 and s.paper_recall(2) == 1.0
    assert s.evidence_recall(2) == 0.5 and s.evidence_recall(3) == 1.0
    assert s.evidence_rr == 0.5 and s.paper_rr == 0.5
    # Evidence text found in another paper's chunk is not a hit.
    assert retrieval_scores("x", ["1,015 tCO2eq"], [("y", "1,015 tCO2eq")]).evidence_ranks == (None,)


# --------------------------------------------------------------------------- faithfulness

def test_faithfulness_known_score():
    answer = "The base model uses 8 attention heads [1]. Training took 3.5 days [2]. It was trained on TPUs [2]."
    r = score_faithfulness(answer, [P1, P2, P3], WordJudge())
    assert r.n_sentences == 3 and r.n_supported == 2
    assert r.score == pytest.approx(2 / 3)
    assert [v.supported for v in r.sentences] == [True, True, False]
    assert "[1]" not in r.sentences[0].sentence  # markers are not part of the claim


def test_faithfulness_empty_answer_is_undefined_not_perfect():
    r = score_faithfulness("", [P1], WordJudge())
    assert r.score is None and r.n_sentences == 0
    assert score_faithfulness("  [1] ", [P1], WordJudge()).score is None


def test_faithfulness_no_passages_means_unsupported():
    r = score_faithfulness("The base model uses 8 attention heads.", [], WordJudge())
    assert r.score == 0.0


def test_faithfulness_judge_errors_never_count_as_supported():
    r = score_faithfulness("The base model uses 8 attention heads. Training took 3.5 days.", [P1, P2], BrokenJudge())
    assert r.score == 0.0 and r.n_errors == 2 and r.n_supported == 0


# --------------------------------------------------------------------------- citations (ALCE)

def test_citations_all_correct():
    r = score_citations("The base model uses 8 attention heads [1]. Training took 3.5 days [2].", [P1, P2, P3], WordJudge())
    assert r.recall == 1.0 and r.precision == 1.0 and r.n_citations == 2


def test_citations_wrong_passage_cited():
    r = score_citations("The base model uses 8 attention heads [2]. Training took 3.5 days [2].", [P1, P2], WordJudge())
    assert r.recall == 0.5 and r.precision == 0.5


def test_citations_none_at_all():
    r = score_citations("The base model uses 8 attention heads. Training took 3.5 days.", [P1, P2], WordJudge())
    assert r.recall == 0.0 and r.precision == 0.0 and r.n_citations == 0
    assert all(s.note == "no citation" for s in r.sentences)


def test_citation_to_passage_not_retrieved():
    judge = WordJudge()
    r = score_citations("The base model uses 8 attention heads [5].", [P1, P2], judge)
    assert r.recall == 0.0 and r.precision == 0.0 and r.n_citations == 1
    assert "not retrieved" in r.sentences[0].note
    assert judge.calls == []  # nothing to judge: a passage that was never shown supports nothing


def test_citations_overcitation_is_imprecise():
    # [1] alone supports the sentence; [3] is irrelevant and removing it keeps support -> imprecise.
    r = score_citations("The base model uses 8 attention heads [1][3].", [P1, P2, P3], WordJudge())
    assert r.recall == 1.0 and r.precision == 0.5
    assert r.sentences[0].precise == (1,)


def test_citations_jointly_needed_are_both_precise():
    r = score_citations("The base model uses 8 attention heads and training took 3.5 days [1, 2].", [P1, P2], WordJudge())
    assert r.recall == 1.0 and r.precision == 1.0


def test_citations_empty_answer():
    r = score_citations("", [P1], WordJudge())
    assert r.recall is None and r.precision is None


def test_citations_judge_error_is_not_support():
    r = score_citations("The base model uses 8 attention heads [1].", [P1], BrokenJudge())
    assert r.recall == 0.0 and r.precision == 0.0 and r.n_errors == 1


# --------------------------------------------------------------------------- correctness and abstention

def test_token_f1_known_values():
    assert token_f1("The answer is 42 [1].", "answer 42") == pytest.approx(0.8)
    assert token_f1("", "42") == 0.0
    assert token_f1("completely different", "42") == 0.0
    assert token_f1("8 heads", "8 heads") == 1.0


def test_correctness_judged_and_lexical():
    c = score_correctness("q", "8 heads", "It uses 8 heads [1].", WordJudge())
    assert c.judged is True and 0 < c.token_f1 < 1
    assert score_correctness("q", "8 heads", "", WordJudge()).judged is False
    assert score_correctness("q", "8 heads", "8 heads", None).judged is None


def test_abstention():
    assert abstention_ok(answerable=False, abstained=True)
    assert abstention_ok(answerable=True, abstained=False)
    assert not abstention_ok(answerable=True, abstained=True)
    assert not abstention_ok(answerable=False, abstained=False)


def test_claims_split_and_markers():
    claims = claims_of("First claim [1]. Second claim [2, 3].\nThird one.")
    assert claims == [("First claim.", [1]), ("Second claim.", [2, 3]), ("Third one.", [])]
