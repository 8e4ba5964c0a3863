"""The default answering path: retrieve (optionally with HyDE), then answer from quotes (engine/answer.py).

The model server is started only when a model is needed: an empty index or a failed search never waits
for it.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

from foundation.config import Settings
from foundation.types import Answer, AskEvent
from assistant.engine.answer import ABSTAIN_TEXT, Evidence, QuoteAnswerer
from assistant.engine.evidence import EvidenceSelector
from assistant.engine.gate import model_for
from assistant.engine.support import SupportChecker
from assistant.llm.protocol import LLM


class SingleShot:
    def __init__(self, retriever, llm: Callable[[], LLM], settings: Settings):
        self.retriever = retriever
        self.library = retriever.library
        self.llm = llm  # built on first use
        self.settings = settings

    def stream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
               hyde: bool = False) -> Iterator[AskEvent]:
        mode = mode or self.settings.retrieval_mode
        timings: dict[str, float] = {}
        yield AskEvent(kind="search", text=f"searching ({mode})")
        for warning in self.retriever.warnings(mode):  # a missing index must not pass for "no answer"
            yield AskEvent(kind="error", text=warning)
        if self.library.dense.count() == 0:
            yield AskEvent(kind="error", text="the index is empty: ingest papers first (paper-assistant ingest ...)")
            yield AskEvent(kind="answer", answer=Answer(question=question, text=ABSTAIN_TEXT, abstained=True,
                                                        abstain_reason="the index is empty", queries=(question,)))
            return
        vectors: list = []
        if hyde:  # a hypothetical answer passage is searched beside the question (engine/hyde.py)
            from assistant.engine.hyde import hyde as write_hyde

            yield AskEvent(kind="status", text="writing a hypothetical passage (HyDE)")
            made = write_hyde(question, self.llm(), self.library.embedder, self.settings)
            vectors, timings["hyde_s"] = made.vectors, made.seconds
            if made.error:
                yield AskEvent(kind="error", text=f"HyDE skipped: {made.error}")
        start = time.perf_counter()
        hits = self.retriever.search(question, mode, self.settings.top_k, papers, vectors)
        evidence = Evidence(hits, relevance=self.retriever.relevance(question, papers),
                            bm25_top=self._bm25_top(question, papers))
        timings["retrieve_s"] = round(time.perf_counter() - start, 3)
        yield AskEvent(kind="status", text="waiting for the model")
        llm = self.llm()
        bm25 = self.library.extra_indexes.get("bm25")
        selector = EvidenceSelector(self.library.embedder.embed_tokens, getattr(bm25, "idf", None))
        checker = SupportChecker(llm, self.settings)
        try:
            answerer = QuoteAnswerer(llm, self.settings, selector, checker, getattr(bm25, "idf", None),
                                     gate=model_for(llm.model))
            yield from answerer.stream(question, evidence, (question,), timings)
        finally:
            checker.close()

    def _bm25_top(self, question: str, papers: Sequence[str] | None) -> float:
        bm25 = self.library.extra_indexes.get("bm25")
        if bm25 is None:
            return 0.0
        top = bm25.search(question, 1, papers)
        return float(top[0][1]) if top else 0.0
