"""Does a quote support a sentence? Code first, the model second: the checker every answer path uses.

Code: every number, name and technical term of the sentence must be in the quote (or its paper's title),
and most of its content words. This alone stops the small model's typical error, a fact or name that no
passage holds. Then a graded score: the model's P(Yes) that the quote states what the sentence says (one
generated token, log-probabilities), read as the support score; the threshold is a setting fitted on pairs
built from the corpus (bench/support.py).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from assistant.core.config import Settings
from assistant.core.prompts import load_prompt
from assistant.core.text import names_in, numbers_in, numbers_ok, overlap
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
