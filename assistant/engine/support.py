"""Does a quote support a sentence? Code first, the model second: the checker every answer path uses.

Code: every number, name and technical term of the sentence must be in the quote (or its paper's title),
and most of its content words; a relation with a direction ("built on top of", "outperforms") must not have its
ends swapped. This alone stops the small model's typical error, a fact or name that no
passage holds. Then a graded score: the model's P(Yes) that the quote states what the sentence says (one
generated token, log-probabilities), read as the support score; the threshold is a setting fitted on pairs
built from the corpus (bench/support.py).
"""
from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from foundation.config import Settings
from foundation.prompts import load_prompt
from foundation.text import name_spans, names_in, numbers_in, numbers_ok, overlap
from assistant.llm.protocol import LLM, LLMError


@dataclass(frozen=True)
class Support:
    supported: bool | None      # None: could not be checked
    score: float | None         # in [0, 1]
    note: str = ""


def grounding_problem(sentence: str, quote: str, title: str = "") -> str:
    """'' when the sentence's numbers, names and most content words are in the quote, else what is missing."""
    if not numbers_ok(sentence, quote):
        missing = sorted(numbers_in(sentence) - numbers_in(quote))
        return f"numbers not in the quote: {', '.join(missing)}"
    haystack = f"{quote} {title}".lower()
    names = sorted(n for n in names_in(sentence) if n not in haystack)
    if names:
        return f"names not in the quote: {', '.join(names)}"
    terms = sorted(t for t in compound_terms(sentence) if t not in haystack)
    if terms:  # "Grouped-query attention reduces H heads to one" from a quote about multi-query attention
        return f"terms not in the quote: {', '.join(terms)}"
    return inverted_relation(sentence, quote)


COMPOUND = re.compile(r"\b[A-Za-z]{3,}(?:-[A-Za-z]{3,})+\b")


def compound_terms(sentence: str) -> set[str]:
    """Hyphenated technical terms (grouped-query, multi-head, key-value), wherever they stand: a sentence-initial
    one is a name the name rule cannot see."""
    return {m.group(0).lower() for m in COMPOUND.finditer(sentence)}


# Relations with a direction. The small model swaps their ends ("PagedAttention is built on top of vLLM", from
# "we build vLLM, a ... serving engine on top of PagedAttention") and keeps every word of the quote, so the word
# checks pass and the model's own P(Yes) passed it too (0.59).
DIRECTED = re.compile(r"\b(?:on top of|based on|derived from|extends|an extension of|a variant of|"
                      r"outperforms|better than|worse than|faster than|slower than|larger than|smaller than|"
                      r"replaces|instead of|inspired by|precedes|followed by)\b", re.I)
BEFORE, AFTER = 80, 40  # characters around the relation in the quote where its ends are looked for


def inverted_relation(sentence: str, quote: str) -> str:
    """'' unless the sentence says "A <relation> B" where the quote says only "B <relation> A"."""
    quoted = name_spans(quote)
    known = {n for n, _, _ in quoted}
    first = re.match(r"\s*([A-Za-z][\w-]*)", sentence)  # "Orca outperforms vLLM": a name the quote writes as one
    names = name_spans(sentence)
    if first and first.group(1).lower() in known and not any(start == first.start(1) for _, start, _ in names):
        names.insert(0, (first.group(1).lower(), first.start(1), first.end(1)))
    for m in DIRECTED.finditer(sentence):
        before = [n for n, _, end in names if end <= m.start()]
        after = [n for n, start, _ in names if start >= m.end()]
        if not before or not after or before[-1] == after[0]:
            continue
        left, right = before[-1], after[0]
        same = swapped = False
        for q in re.finditer(re.escape(m.group(0)), quote, re.I):
            q_before = {n for n, _, end in quoted if end <= q.start() and q.start() - end <= BEFORE}
            q_after = {n for n, start, _ in quoted if start >= q.end() and start - q.end() <= AFTER}
            same |= left in q_before and right in q_after
            swapped |= right in q_before and left in q_after
        if swapped and not same:
            return f"the quote has it the other way round: {right} ... {m.group(0).lower()} {left}"
    return ""


class SupportChecker:
    """Checks sentences against quotes; model calls run concurrently (vLLM batches them)."""

    def __init__(self, llm: LLM | None, settings: Settings, workers: int = 4):
        self.llm = llm
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="support")

    def submit(self, sentence: str, quote: str, title: str = "") -> Future:
        return self._pool.submit(self.check, sentence, quote, title)

    def run(self, call, *args) -> Future:
        """Another model call beside the checks (the answerability gate), on the same workers."""
        return self._pool.submit(call, *args)

    def check(self, sentence: str, quote: str, title: str = "") -> Support:
        problem = grounding_problem(sentence, quote, title)
        if problem:
            return Support(False, 0.0, problem)
        coverage = overlap(sentence, quote)
        if coverage < self.settings.support_min_coverage:
            return Support(False, round(coverage * 0.5, 4), f"only {coverage:.0%} of its words are in the quote")
        score_of = getattr(self.llm, "yes_probability", None)
        if not callable(score_of):  # a backend without log-probabilities: the words are all we have
            return Support(coverage >= 0.8, round(coverage, 4), f"{coverage:.0%} of its words are in the quote")
        try:
            p_yes = float(score_of(self.messages(sentence, quote)))
        except LLMError as exc:
            return Support(None, None, f"not checked: {exc}")
        return Support(p_yes >= self.settings.support_threshold, round(p_yes, 4),
                       f"P(supported) {p_yes:.2f}, {coverage:.0%} of its words in the quote")

    def messages(self, sentence: str, quote: str) -> list[dict[str, str]]:
        prompts = self.settings.prompts_dir
        return [{"role": "system", "content": load_prompt("support_system", prompts).render()},
                {"role": "user", "content": load_prompt("support", prompts).render(quote=quote, sentence=sentence)}]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
