"""Questions about one paper, routed to it: "What motivated the authors to create such a benchmark?" names no
paper, but a reader asking it has one in mind, and retrieval's best passages mostly come from it.

A question that speaks of "the paper", "the authors", "the proposed method" and the like is routed to the paper
that dominates its retrieved passages (their reciprocal-rank mass), helped by the question's words in a title;
its passages are then retrieved within that paper, and the decision to answer is left to the model's pick
(which can say "no quote answers") rather than to the gate fitted on questions that name what they ask about.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

from foundation.text import content_words
from foundation.types import Hit

ABOUT_A_PAPER = re.compile(
    r"\b(?:the|this|that) (?:paper|work|study|article|authors?|researchers|benchmark|dataset|framework)\b"
    r"|\bthe proposed\b|\bthe (?:new|introduced|presented) (?:method|model|approach|technique|architecture)\b"
    r"|\bthey (?:propose|introduce|present|use|train|choose|chose|argue|claim|find|found|show)\b"
    r"|\btheir (?:method|model|approach|benchmark|dataset|system|architecture|results?|experiments?|design)\b"
    r"|\bsuch an? (?:benchmark|dataset|model|method|approach|design)\b|\bthe authors'", re.I)
MIN_SHARE = 0.45       # of the passages' reciprocal-rank mass, for a paper to be the one meant
TITLE_WORD_BONUS = 0.1  # per question word in the paper's title


def about_one_paper(question: str) -> bool:
    return bool(ABOUT_A_PAPER.search(question))


def paper_meant(question: str, hits: Sequence[Hit]) -> str | None:
    """The arXiv id of the paper a question about "the paper" means, or None when no paper clearly dominates."""
    if not hits:
        return None
    mass: dict[str, float] = defaultdict(float)
    titles: dict[str, str] = {}
    for rank, hit in enumerate(hits, start=1):
        mass[hit.chunk.arxiv_id] += 1.0 / rank
        titles.setdefault(hit.chunk.arxiv_id, hit.paper_title)
    total = sum(mass.values())
    words = content_words(question)
    scored = {pid: m / total + TITLE_WORD_BONUS * len(words & content_words(titles[pid])) for pid, m in mass.items()}
    best = max(scored, key=scored.__getitem__)
    return best if scored[best] >= MIN_SHARE else None
