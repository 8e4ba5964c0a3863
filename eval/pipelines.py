"""What a pipeline under evaluation returns, the LLM meter, and the project's own pipeline."""
from __future__ import annotations

from typing import Any, Iterator, Protocol

from pydantic import BaseModel, ConfigDict, Field

from foundation.config import Settings
from assistant.llm.protocol import without_candidates
from eval.datasets import QAItem


class PassageRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    chunk_id: str
    arxiv_id: str
    text: str
    score: float = 0.0
    source: str = ""
    pages: str = ""


class PipelineOutput(BaseModel):
    answer: str
    abstained: bool = False
    passages: tuple[PassageRecord, ...] = ()
    sources: tuple[str, ...] = Field(default=(), description="What [n] markers point at, when not the passages "
                                     "(the assistant's quotes); faithfulness and citations are judged against these")
    timings: dict[str, float] = Field(default_factory=dict)
    tokens: dict[str, Any] = Field(default_factory=dict)
    model: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class Pipeline(Protocol):
    name: str

    def answer(self, item: QAItem) -> PipelineOutput: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- metering the LLM

class MeteredLLM:
    """Wraps an LLM backend and counts calls and tokens (exact from the server where it reports them).

    Streamed replies are counted one token per piece (vLLM sends one token per event) and their prompts
    by characters; ``exact`` turns False when any count was estimated.
    """

    def __init__(self, inner):
        self.inner = inner
        self.model = getattr(inner, "model", "")
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.prompt_chars = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.exact = True

    def snapshot(self) -> dict[str, Any]:
        return {"llm_calls": self.calls, "prompt_chars": self.prompt_chars, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "exact": self.exact}

    def _count_prompt(self, messages) -> None:
        self.calls += 1
        self.prompt_chars += sum(len(m.get("content", "")) for m in messages)

    def complete(self, messages, **kwargs) -> str:
        self._count_prompt(messages)
        if hasattr(self.inner, "chat"):
            reply = self.inner.chat(messages, **kwargs)
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
            return reply.text
        text = self.inner.complete(messages, **kwargs)
        self.exact = False
        self.completion_tokens += max(1, len(text) // 4)
        return text

    def stream_choices(self, messages, **kwargs) -> Iterator[tuple[str, list[dict[str, float]]]]:
        """The reply with its per-token candidates (answer_style "quotes"): one token per candidate list."""
        if not callable(getattr(self.inner, "stream_choices", None)):
            yield from without_candidates(self.stream(messages, **kwargs))
            return
        self._count_prompt(messages)
        for piece, candidates in self.inner.stream_choices(messages, **kwargs):
            self.completion_tokens += len(candidates) or 1
            self.exact = self.exact and bool(candidates)
            yield piece, candidates

    def stream(self, messages, **kwargs) -> Iterator[str]:
        self._count_prompt(messages)
        self.exact = False
        for piece in self.inner.stream(messages, **kwargs):
            self.completion_tokens += 1
            yield piece

    async def acomplete(self, messages, **kwargs) -> str:
        import asyncio

        if not hasattr(self.inner, "achat") and not hasattr(self.inner, "acomplete"):
            return await asyncio.to_thread(self.complete, messages, **kwargs)
        self._count_prompt(messages)
        if hasattr(self.inner, "achat"):
            reply = await self.inner.achat(messages, **kwargs)
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
            return reply.text
        text = await self.inner.acomplete(messages, **kwargs)
        self.exact = False
        self.completion_tokens += max(1, len(text) // 4)
        return text

    async def astream(self, messages, **kwargs):
        self._count_prompt(messages)
        self.exact = False
        if hasattr(self.inner, "astream"):
            async for piece in self.inner.astream(messages, **kwargs):
                self.completion_tokens += 1
                yield piece
            return
        for piece in self.inner.stream(messages, **kwargs):  # a sync-only backend: rare, and only in tests
            self.completion_tokens += 1
            yield piece

    def __getattr__(self, name: str):  # anything else passes through unmetered
        return getattr(self.inner, name)


# --------------------------------------------------------------------------- the project's pipeline

class AssistantPipeline:
    """The project's own answering path, through the public Assistant API only."""

    def __init__(self, name: str, settings: Settings, embedder=None, llm=None):
        self.name = name
        self.settings = settings
        self.embedder = embedder
        self.llm = MeteredLLM(llm) if llm is not None else None
        self.assistant = None

    def _ready(self):
        """Backends on first use: a retrieval-only or resumed run never starts a model server."""
        if self.assistant is None:
            from assistant.api import Assistant

            if self.llm is None:
                from assistant.llm.server import make_llm

                self.llm = MeteredLLM(make_llm(self.settings))
            self.assistant = Assistant(self.settings, embedder=self.embedder, llm=self.llm)
        return self.assistant

    def answer(self, item: QAItem) -> PipelineOutput:
        assistant = self._ready()
        self.llm.reset()
        answer = assistant.ask(item.question)
        if answer.partial and not answer.text.strip():  # recorded as an error (retried on resume), not as an answer
            raise RuntimeError(f"the model gave no answer: {answer.settings.get('error', 'unknown error')}")
        passages = tuple(PassageRecord(chunk_id=h.chunk.id, arxiv_id=h.chunk.arxiv_id, text=h.chunk.text,
                                       score=round(h.score, 5), source=h.source, pages=h.chunk.pages_label)
                         for h in answer.passages)
        return PipelineOutput(
            answer=answer.text, abstained=answer.abstained, passages=passages, sources=answer.sources,
            timings=dict(answer.timings),
            tokens=self.llm.snapshot(), model=answer.model,
            detail={"settings": answer.settings, "queries": list(answer.queries), "partial": answer.partial,
                    "direct_answer": answer.direct_answer,
                    "citations": [c.model_dump(mode="json", include={"n", "chunk_id", "arxiv_id", "pages"})
                                  for c in answer.citations],
                    "verdicts": [v.model_dump(mode="json") for v in answer.verdicts]})

    def close(self) -> None:
        if self.assistant is not None:
            self.assistant.close()


