"""HyDE (Gao et al. 2022, "Precise Zero-Shot Dense Retrieval without Relevance Labels").

The model writes a passage that would answer the question; its embedding is searched beside the
question's and the rankings fused (Retriever.rank's extra_vectors, reciprocal-rank fusion). The
passage may be wrong in its facts: only its wording and topic steer retrieval, it is never shown as
evidence. It helps weak retrievers and can hurt strong ones, so it is a setting, measured in
bench/agentic.py.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from foundation.config import Settings
from foundation.threads import run_sync
from assistant.llm.structured import acomplete
from assistant.llm.protocol import LLM, LLMError, Message
from foundation.prompts import load_prompt

HYDE_MAX_TOKENS = 120
MIN_HYDE_CHARS = 20


@dataclass
class HydeResult:
    passages: list[str] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def hyde_messages(question: str, settings: Settings) -> list[Message]:
    return [{"role": "user", "content": load_prompt("hyde", settings.prompts_dir).render(question=question)}]


async def ahyde(question: str, llm: LLM, embedder, settings: Settings, n: int = 1) -> HydeResult:
    """n hypothetical passages and their embeddings; on any model failure, none (retrieval goes on without)."""
    start = time.perf_counter()
    messages = hyde_messages(question, settings)
    temps = [0.0] + [0.7] * (n - 1)  # one greedy passage, the rest sampled for variety
    replies = await asyncio.gather(*(acomplete(llm, messages, max_tokens=HYDE_MAX_TOKENS, temperature=t)
                                     for t in temps), return_exceptions=True)
    passages = [r.strip() for r in replies if isinstance(r, str) and len(r.strip()) >= MIN_HYDE_CHARS]
    errors = [str(r) for r in replies if isinstance(r, BaseException)]
    for r in replies:
        if isinstance(r, BaseException) and not isinstance(r, LLMError):
            raise r
    vectors = list(await asyncio.to_thread(embedder.embed, passages)) if passages else []
    error = "; ".join(errors) if errors else ("" if passages else "the model wrote no usable passage")
    return HydeResult(passages, vectors, round(time.perf_counter() - start, 3), error)


def hyde(question: str, llm: LLM, embedder, settings: Settings, n: int = 1) -> HydeResult:
    """Sync twin for the single-shot path."""
    return run_sync(ahyde(question, llm, embedder, settings, n))
