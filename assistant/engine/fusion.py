"""Weighted reciprocal-rank fusion of several retrievers' rankings."""
from __future__ import annotations

from typing import Mapping, Sequence


def rrf(rankings: Mapping[str, Sequence[tuple[str, float]]], weights: Mapping[str, float], k: int = 60,
        limit: int = 10) -> list[tuple[str, float]]:
    """Fuse rankings: score(d) = sum over retrievers r of weights[r] / (k + rank_r(d)), rank from 1.

    `rankings` maps a retriever name to its (id, score) list, best first; its own scores are
    ignored, only ranks count. A retriever missing from `weights` gets weight 0 (left out);
    a duplicate id within one ranking counts at its best rank only. Ties break by the best
    rank the id reached in any ranking, then by id, so the order is deterministic.
    Returns (id, fused score) pairs, best first, at most `limit`.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    fused: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    for name, ranking in rankings.items():
        w = float(weights.get(name, 0.0))
        if w == 0.0:
            continue
        seen: set[str] = set()
        for rank, (doc_id, _score) in enumerate(ranking, start=1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (k + rank)
            best_rank[doc_id] = min(best_rank.get(doc_id, rank), rank)
    order = sorted(fused, key=lambda d: (-fused[d], best_rank[d], d))
    return [(d, fused[d]) for d in order[:limit]]
