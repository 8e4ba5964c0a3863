"""The answerability gate: before generating, the model scores whether the passages answer the question.

One generated token: P(Yes) from the server's log-probabilities, compared with settings.answer_gate.
The prompt starts like the answer prompt (same system message, same passages first), so vLLM's
prefix cache serves the answer's prefill from the gate's. Backends without log-probabilities skip it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from assistant.core.config import Settings
from assistant.llm.protocol import LLM, LLMError
from assistant.core.prompts import load_prompt
from assistant.engine.passages import format_passages
from assistant.core.types import Hit


@dataclass(frozen=True)
class GateResult:
    score: float | None  # P(Yes); None when the gate did not run
    seconds: float = 0.0
    error: str = ""

    def closed(self, threshold: float) -> bool:
        return self.score is not None and self.score < threshold


def answerability(question: str, hits: Sequence[Hit], llm: LLM, settings: Settings) -> GateResult:
    score_of = getattr(llm, "yes_probability", None)
    if settings.answer_gate <= 0 or not hits or not callable(score_of):
        return GateResult(None)
    messages = [{"role": "system", "content": load_prompt("answer_system", settings.prompts_dir).render()},
                {"role": "user", "content": load_prompt("answer_gate", settings.prompts_dir).render(
                    passages=format_passages(hits, settings), question=question)}]
    start = time.perf_counter()
    try:
        score = float(score_of(messages))
    except LLMError as exc:  # the gate is advisory: a failure lets the answer go ahead
        return GateResult(None, round(time.perf_counter() - start, 3), str(exc))
    return GateResult(round(score, 4), round(time.perf_counter() - start, 3))
