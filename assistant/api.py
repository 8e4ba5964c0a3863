"""The one public entry point: Assistant(settings).ingest / search / ask / ask_stream, with async twins."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable, Iterator, Sequence

from foundation.config import Settings, load_settings
from foundation.threads import aiter_in_thread
from assistant.llm.protocol import LLM
from foundation.types import Answer, AskEvent, Hit, IngestResult, PaperRecord, ProgressEvent, with_paper_details
from indexes.base import Embedder

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


class Assistant:
    """Settings come from the config file and env unless given; backends are built lazily unless injected."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None, llm: LLM | None = None,
                 config: Path | None = None, stop_server_on_exit: bool = False,
                 server_notice: Callable[[str], None] | None = None, **overrides):
        """stop_server_on_exit: a local model server this Assistant starts stops when this process ends
        (an interactive session), unless server_keep_alive_s is negative. server_notice receives the one
        line that says a server was started (default: stderr)."""
        self.settings = settings or load_settings(config, **overrides)
        self._embedder = embedder
        self._llm = llm
        self._library = None
        self._retriever = None
        self.stop_server_on_exit = stop_server_on_exit
        self.server_notice = server_notice

    # --- backends, built on first use so that construction is instant
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from indexes.embedder import embedder_for

            self._embedder = embedder_for(self.settings)
        return self._embedder

    @property
    def library(self):
        if self._library is None:
            from indexes.library import Library

            self._library = Library(self.settings, self.embedder)
        return self._library

    @property
    def retriever(self):
        if self._retriever is None:
            from assistant.engine.retrieve import Retriever

            self._retriever = Retriever(self.library)
        return self._retriever

    def llm(self, progress: Progress = _quiet) -> LLM:
        if self._llm is None:
            from assistant.llm.server import make_llm

            self._llm = make_llm(self.settings, progress=lambda msg: progress(ProgressEvent(stage="server", message=msg)),
                                 announce=self.server_notice, stop_with_process=self.stop_server_on_exit)
        return self._llm

    def server_exit_note(self) -> str:
        """What becomes of a local model server that this Assistant started once this process ends."""
        server = getattr(getattr(self._llm, "hooks", None), "server", None)
        policy = getattr(server, "started", None)
        return policy.exit_note() if policy is not None else ""

    # --- the library
    def ingest(self, items: Iterable[str] | str, progress: Progress = _quiet) -> list[IngestResult]:
        """Ingest ids, arXiv URLs, reading-list files, PDFs, folders of PDFs (settings.pdf_glob), .bib files and
        Zotero libraries (a data directory or zotero.sqlite); failures are recorded with reasons, the rest goes on."""
        if isinstance(items, str):
            items = [items]
        from ingest.pipeline import Ingestor

        ingestor = Ingestor(self.library)
        try:
            return ingestor.ingest(list(items), progress)
        finally:
            ingestor.close()

    def papers(self) -> list[PaperRecord]:
        return self.library.papers()

    def remove(self, arxiv_id: str) -> bool:
        with self.library.writing():
            removed = self.library.remove(arxiv_id)
        if removed:  # summary-tree bookkeeping: topic summaries that used the paper go stale
            from indexes.raptor import forget_paper

            forget_paper(self.library, arxiv_id)
        return removed

    def paper_id_of(self, item: str) -> str:
        """The id of the paper a PDF file was ingested as (by its content, else by its path), or item itself."""
        path = Path(item).expanduser()
        if not path.is_file():
            return item
        from ingest.local import sha256_of

        owner = self.library.store.pdf_owner(sha256_of(path))
        if owner is not None:
            return owner[0]
        at_path = self.library.store.papers_at_path(str(path.resolve()))
        return at_path[0].paper.arxiv_id if at_path else item

    def remove_failed(self) -> list[str]:
        """Forget every failed paper (`papers --failed`); returns their ids."""
        with self.library.writing():
            return self.library.remove_failed()

    def neighbours(self, chunk_id: str, before: int = 1, after: int = 1):
        return self.library.store.neighbours(chunk_id, before, after)

    def modes(self) -> list[str]:
        """Retrieval modes this library can serve (dense plus whatever secondary indexes it keeps)."""
        return self.retriever.modes()

    def tree_status(self):
        """RAPTOR summary trees: which papers have a current tree (indexes.raptor.TreeStatus); no model needed."""
        from indexes.raptor import TreeStore

        trees = TreeStore(self.library)
        try:
            return trees.status()
        finally:
            trees.close()

    # --- retrieval
    def search(self, query: str, k: int | None = None, mode: str | None = None,
               papers: Sequence[str] | None = None) -> list[Hit]:
        return self.retriever.search(query, mode or self.settings.retrieval_mode, k or self.settings.search_k, papers)

    # --- answering
    def ask_stream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
                   progress: Progress = _quiet, *, agentic: bool | None = None,
                   hyde: bool | None = None) -> Iterator[AskEvent]:
        """Typed events as the answer is made: search, passages, tokens, then the final answer.

        agentic / hyde override settings.agentic / settings.hyde for this call.
        """
        from assistant.engine.answer import clean_question

        if self._llm is None:
            from assistant.llm.server import expect_requests

            expect_requests(self.settings)
        question = clean_question(question)
        hyde = self.settings.hyde if hyde is None else hyde
        answering: list[LLM] = []

        def model() -> LLM:
            """The model for this answer: its requests share one deadline (llm_deadline_s from the first)."""
            llm = self.llm(progress)
            if not answering:
                getattr(llm, "begin_answer", lambda: None)()
                answering.append(llm)
            return llm

        try:
            if self.settings.agentic if agentic is None else agentic:
                from assistant.engine.agent.workflow import Engine

                for warning in self.retriever.warnings(mode or self.settings.retrieval_mode):
                    yield AskEvent(kind="error", text=warning)
                engine = Engine(self.retriever, model(), self.settings)
                yield from self._with_leaf_citations(engine.stream(question, papers, mode, hyde))
                return
            from assistant.engine.single_shot import SingleShot

            single = SingleShot(self.retriever, model, self.settings)
            yield from self._with_leaf_citations(single.stream(question, papers, mode, hyde))
        finally:
            for llm in answering:
                getattr(llm, "end_answer", lambda: None)()

    def _with_leaf_citations(self, events: Iterator[AskEvent]) -> Iterator[AskEvent]:
        """The final answer's citations of tree summaries point at leaf passages and their pages, and every
        citation carries its paper's PDF on disk (page_start is the page to open), DOI and citation key."""
        from assistant.engine.cite import leaf_citations

        for event in events:
            if event.kind == "answer" and event.answer is not None:
                answer = leaf_citations(event.answer, self.library)
                answer = with_paper_details(answer, self.library.paper_map())
                event = event.model_copy(update={"answer": answer})
            yield event

    def ask(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
            progress: Progress = _quiet, *, agentic: bool | None = None, hyde: bool | None = None) -> Answer:
        start = time.perf_counter()
        answer = None
        for event in self.ask_stream(question, papers, mode, progress, agentic=agentic, hyde=hyde):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        timings = {**answer.timings, "total_s": round(time.perf_counter() - start, 3)}
        return answer.model_copy(update={"timings": timings})

    # --- async twins for the TUI: the work runs in a thread, the event loop stays free
    async def aingest(self, items: Iterable[str] | str, progress: Progress = _quiet) -> list[IngestResult]:
        return await asyncio.to_thread(self.ingest, items, progress)

    async def asearch(self, query: str, k: int | None = None, mode: str | None = None,
                      papers: Sequence[str] | None = None) -> list[Hit]:
        return await asyncio.to_thread(self.search, query, k, mode, papers)

    async def aask(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None) -> Answer:
        return await asyncio.to_thread(self.ask, question, papers, mode)

    async def aask_stream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
                          *, agentic: bool | None = None, hyde: bool | None = None) -> AsyncIterator[AskEvent]:
        events = aiter_in_thread(lambda: self.ask_stream(question, papers, mode, agentic=agentic, hyde=hyde))
        async for event in events:
            yield event

    # --- RAPTOR summary tree and writers' drafts (indexes/raptor.py, assistant/summaries/draft.py)
    def build_tree(self, papers: Sequence[str] | None = None, progress: Progress = _quiet, **config):
        """Build missing/outdated paper trees and the topic level; resumable. Returns a BuildReport."""
        from assistant.summaries.build import TreeBuilder
        from assistant.summaries.config import TreeConfig

        llm = self.llm(progress)
        builder = TreeBuilder(self.library, llm, TreeConfig.from_settings(self.settings, llm, **config))
        try:
            return builder.build(papers, progress)
        finally:
            builder.close()

    def summarize(self, papers: Sequence[str] | None = None, topic: str | None = None, length: str | int = "medium",
                  style: str = "summary", progress: Progress = _quiet):
        """A cited Markdown draft (summarize.Draft) of papers or a topic, from the tree where it exists."""
        from assistant.summaries.draft import summarize

        return summarize(self, papers=papers, topic=topic, length=length, style=style, progress=progress)

    def close(self) -> None:
        if self._library is not None:
            self._library.close()
