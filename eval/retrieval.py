"""Retrieval-only evaluation, shared by `paper-assistant eval retrieval` and bench/recall.py: search each gold
question, rank its paper and evidence (eval.metrics.retrieval_scores, the eval's one definition of a hit),
and summarise recall@k and MRR over the questions."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

from eval.datasets import QAItem
from eval.metrics import Result, RetrievalScores, retrieval_scores

# A search: the question -> (arxiv id, passage text) best first.
Search = Callable[[str], Sequence[tuple[str, str]]]


class QuestionRetrieval(Result):
    qid: str
    kind: str
    scores: RetrievalScores
    seconds: float


def gold_retrieval_items(items: Sequence[QAItem]) -> list[QAItem]:
    """The questions retrieval can be scored on: answerable, with a gold paper and evidence."""
    return [i for i in items if i.answerable and i.arxiv_id and i.evidence]


def run_retrieval(items: Sequence[QAItem], search: Search,
                  on_question: Callable[[QuestionRetrieval], None] = lambda _: None) -> list[QuestionRetrieval]:
    """Each item searched once (timed, its own query encode included) and scored."""
    done = []
    for item in items:
        start = time.perf_counter()
        passages = search(item.question)
        seconds = time.perf_counter() - start
        done.append(QuestionRetrieval(qid=item.id, kind=item.kind, seconds=seconds,
                                      scores=retrieval_scores(item.arxiv_id, item.evidence, passages)))
        on_question(done[-1])
    return done


def _first_evidence(s: RetrievalScores) -> int | None:
    return min((r for r in s.evidence_ranks if r is not None), default=None)


def summarize_retrieval(results: Sequence[QuestionRetrieval], ks: Sequence[int]) -> dict[str, float]:
    """Means over questions, for each k: paper_recall@k (the gold paper in the top k), evidence_recall@k (the
    share of a question's evidence strings in the top k), evidence_any@k / evidence_all@k (any / every one
    of them); paper_mrr, evidence_mrr (1 / rank of the first hit); p50_ms, the median search time."""
    n = len(results)
    if not n:
        return {"questions": 0}

    def mean(values) -> float:
        return sum(values) / n

    scores = [r.scores for r in results]
    summary: dict[str, float] = {"questions": n}
    summary |= {f"paper_recall@{k}": mean(s.paper_recall(k) for s in scores) for k in ks}
    summary |= {f"evidence_recall@{k}": mean(s.evidence_recall(k) for s in scores) for k in ks}
    summary |= {f"evidence_any@{k}": mean(1.0 for s in scores if (f := _first_evidence(s)) is not None and f <= k)
                for k in ks}
    summary |= {f"evidence_all@{k}": mean(1.0 for s in scores if s.evidence_recall(k) == 1.0) for k in ks}
    summary["paper_mrr"] = mean(s.paper_rr for s in scores)
    summary["evidence_mrr"] = mean(s.evidence_rr for s in scores)
    summary["p50_ms"] = 1000 * statistics.median(r.seconds for r in results)
    return summary
