"""The default answering path: one retrieval (optionally with HyDE), then the shared steps (engine/answer.py).

The model server is started only when a model is needed: an empty index or a failed search never waits
for it.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

from assistant.engine.answer import Answerer
from assistant.engine.build import ABSTAIN_TEXT
from assistant.engine.hyde import hyde as write_hyde
from assistant.engine.retrieve import Retriever
from assistant.engine.route import about_one_paper, paper_meant
from assistant.llm.protocol import LLM
from foundation.config import Settings
from foundation.types import Answer, AskEvent


class SingleShot:
    def __init__(self, retriever: Retriever, llm: Callable[[], LLM], settings: Settings):
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
            yield AskEvent(kind="status", text="writing a hypothetical passage (HyDE)")
            made = write_hyde(question, self.llm(), self.library.embedder, self.settings)
            vectors, timings["hyde_s"] = made.vectors, made.seconds
            if made.error:
                yield AskEvent(kind="error", text=f"HyDE skipped: {made.error}")
        start = time.perf_counter()
        retrieval = self.retriever.retrieve(question, mode, self.settings.top_k, papers, vectors)
        routed = paper_meant(question, retrieval.hits) if not papers and about_one_paper(question) else None
        if routed:  # "the authors", "the proposed method": the paper that dominates the passages, read within it
            yield AskEvent(kind="status", text=f"reading {routed}, the paper the question is about")
            retrieval = self.retriever.retrieve(question, mode, self.settings.top_k, [routed], vectors)
        timings["retrieve_s"] = round(time.perf_counter() - start, 3)
        yield AskEvent(kind="status", text="waiting for the model")
        answerer = Answerer.for_library(self.library, self.llm(), self.settings)
        try:
            yield from answerer.stream(question, retrieval, (question,), timings,
                                       answerer.provenance("single-shot", mode=mode, routed_to=routed),
                                       routed=bool(routed))
        finally:
            answerer.close()
