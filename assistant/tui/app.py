"""The app factory and the app: engine work runs in workers that post typed messages; one handler
turns worker errors into notifications. Adding, removing and summarising papers is in library_work.py;
screens and widgets live one per module beside this file."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from foundation.config import Settings, load_settings
from assistant.tui.backend import Backend, BackendFactory, default_factory
from assistant.tui.history import Conversation, HistoryStore, Turn
from assistant.tui.dialogs import DialogsMixin
from assistant.tui.library_work import LibraryWorkMixin
from assistant.tui.messages import (AskDone, AskUpdate, BackendReady, CitedChunk, ModesLoaded, NeighboursLoaded,
                                    Notice, PapersLoaded, TreesLoaded, Warmed)
from assistant.tui.screens.main import MainScreen
from assistant.tui.toasts import InertToasts
from foundation.types import Hit, PaperRecord, PaperStatus


class PaperAssistantApp(InertToasts, LibraryWorkMixin, DialogsMixin, App):
    """The app: engine start-up and state, asking, citations, screens; adding, removing and summarising
    papers come from LibraryWorkMixin (assistant/tui/library_work.py), the export and settings dialogs
    from DialogsMixin (assistant/tui/dialogs.py)."""

    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "paper-assistant"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
    ]

    def __init__(self, assistant_factory: BackendFactory = default_factory, settings: Settings | None = None,
                 question: str | None = None) -> None:
        super().__init__()
        self.factory = assistant_factory
        self._settings = settings
        self.backend: Backend | None = None
        self._engine_ready = asyncio.Event()
        self._engine_error = ""  # why the engine could not start, if it could not
        self.first_question = question
        self.papers: list[PaperRecord] | None = None  # None until loaded
        self.scope: set[str] = set()
        self.retrieval_modes: list[str] = []
        self.trees: set[str] = set()  # papers with a RAPTOR summary tree
        self.conversation = Conversation()
        self._ask_seq = 0
        self._ask_id: int | None = None  # the answer now streaming, if any
        self._ask_turn = -1
        self._ingesting = False
        self.main_screen = MainScreen()
        self._library_screen = None

    # --- state everyone reads
    @property
    def settings(self) -> Settings:
        if self.backend is not None:
            return self.backend.settings
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def history(self) -> HistoryStore:
        return HistoryStore(self.settings.home / "history")

    @property
    def asking(self) -> bool:
        return self._ask_id is not None

    def on_mount(self) -> None:
        self.push_screen(self.main_screen)
        self.main_screen.status("loading", "starting the engine…")
        self._update_context()
        # Heavy work (indexes, embedding model) starts after the first paint.
        self.call_after_refresh(self.start_backend)

    # --- the engine, built and warmed in a worker
    @work(exclusive=True, group="backend", exit_on_error=False)
    async def start_backend(self) -> None:
        settings = self.settings
        backend = await asyncio.to_thread(self.factory, settings)
        if hasattr(backend, "server_notice"):  # "started the local model server ...": a notification, not stderr
            backend.server_notice = lambda text: self.post_message(Notice(text))
        self.backend = backend
        self.post_message(BackendReady())
        # The first call opens the store and indexes; other calls wait for it (lazy init is not thread-safe).
        records = await asyncio.to_thread(backend.papers)
        self._engine_ready.set()
        self.post_message(PapersLoaded(records))
        self.load_modes()
        self.load_trees()
        if any(r.status == PaperStatus.ok for r in records):
            self.warm_up()

    @work(exclusive=True, group="warm", exit_on_error=False)
    async def warm_up(self) -> None:
        """Load the embedding model (5-9 s) now rather than on the first question."""
        backend = await self.ready_backend()
        await backend.asearch("warm up", k=1)
        self.post_message(Warmed("ready"))

    async def ready_backend(self) -> Backend:
        await self._engine_ready.wait()
        if self._engine_error or self.backend is None:
            raise RuntimeError(f"the engine did not start: {self._engine_error or 'unknown error'}")
        return self.backend

    def on_backend_ready(self, _: BackendReady) -> None:
        self.main_screen.status("loading", "opening the library…")

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, title="local model server", timeout=15)

    async def action_quit(self) -> None:
        """Close at once; what is still running is dropped (assistant/tui/lifecycle.py says why that is safe)."""
        notes = [getattr(self.backend, "server_exit_note", lambda: "")()]
        if self._ingesting:
            notes.append("adding or summarising papers was interrupted: run it again to resume")
        self.exit(message="\n".join(n for n in notes if n) or None)

    def on_warmed(self, message: Warmed) -> None:
        if not self.asking:
            self.main_screen.status("ready", message.text)

    # --- the library
    @work(exclusive=True, group="papers", exit_on_error=False)
    async def load_papers(self) -> None:
        backend = await self.ready_backend()
        self.post_message(PapersLoaded(await asyncio.to_thread(backend.papers)))
        self.load_trees()

    @work(exclusive=True, group="trees", exit_on_error=False)
    async def load_trees(self) -> None:
        backend = await self.ready_backend()
        if hasattr(backend, "tree_status"):
            status = await asyncio.to_thread(backend.tree_status)
            self.post_message(TreesLoaded(set(status.with_tree)))

    def on_trees_loaded(self, message: TreesLoaded) -> None:
        self.trees = message.with_tree
        if self._library_screen is not None:
            self._library_screen.show_papers(self.papers or [])

    def on_papers_loaded(self, message: PapersLoaded) -> None:
        first = self.papers is None
        self.papers = message.records
        known = {r.paper.arxiv_id for r in self.papers}
        self.scope &= known
        self._update_context()
        if self._library_screen is not None:
            self._library_screen.show_papers(self.papers)
        if first:
            if not any(r.status == PaperStatus.ok for r in self.papers):
                self.main_screen.status("ready", "the library is empty")
                self.offer_ingest("Your library has no papers yet. Add some now?")
            else:
                self.main_screen.status("loading", "loading the embedding model…")
            if self.first_question:
                question, self.first_question = self.first_question, None
                self.ask(question)

    @work(exclusive=True, group="modes", exit_on_error=False)
    async def load_modes(self) -> None:
        backend = await self.ready_backend()
        modes = await asyncio.to_thread(backend.modes) if hasattr(backend, "modes") else []
        self.post_message(ModesLoaded(list(modes)))

    def on_modes_loaded(self, message: ModesLoaded) -> None:
        self.retrieval_modes = message.modes

    def set_scope(self, ids: Iterable[str]) -> None:
        self.scope = set(ids)
        self.conversation.scope = tuple(sorted(self.scope))
        self._update_context()

    def _update_context(self) -> None:
        total = len([r for r in self.papers or [] if r.status == PaperStatus.ok])
        mode = (self._settings or self.backend.settings).retrieval_mode if (self._settings or self.backend) else "dense"
        scope = f"scope: {len(self.scope)} of {total} papers" if self.scope else f"all {total} papers"
        if self.papers is None:
            scope = "library loading"
        self.main_screen.context(f"{mode} · {scope}")

    # --- asking
    def ask(self, question: str) -> bool:
        """Start answering question in the current conversation; False when it cannot start now."""
        if self.asking:
            self.notify("an answer is still being written: esc cancels it", severity="warning")
            return False
        if self.papers is not None and not any(r.status == PaperStatus.ok for r in self.papers):
            self.offer_ingest("The library is empty, so there is nothing to answer from. Add papers now?")
            return False
        sent = self.conversation.with_context(question)
        turn = Turn(question=question)
        self.conversation.turns.append(turn)
        index = len(self.conversation.turns) - 1
        self._ask_seq += 1
        self._ask_id, self._ask_turn = self._ask_seq, index
        self.main_screen.start_turn(turn, index)
        self.main_screen.status("search", "starting…" if self.backend else "waiting for the engine to start…")
        self.run_ask(self._ask_seq, sent, sorted(self.scope) or None, self.settings.retrieval_mode)
        return True

    @work(exclusive=True, group="ask", exit_on_error=False)
    async def run_ask(self, ask_id: int, question: str, papers: list[str] | None, mode: str) -> None:
        backend = await self.ready_backend()
        async for event in backend.aask_stream(question, papers=papers, mode=mode):
            self.post_message(AskUpdate(ask_id, event))
        self.post_message(AskDone(ask_id))

    def on_ask_update(self, message: AskUpdate) -> None:
        if message.ask_id == -1:  # progress of other work (summaries): the status line only
            self.main_screen.status(message.event.kind, message.event.text)
        elif message.ask_id == self._ask_id:
            self.main_screen.apply_event(self._ask_turn, message.event)

    def on_ask_done(self, message: AskDone) -> None:
        if message.ask_id != self._ask_id:
            return
        view = self.main_screen.thread.turn_view(self._ask_turn)
        if view is not None and view.turn.state == "running":  # the stream ended without a final answer
            view.stop("failed", "the engine stopped without an answer")
        self._finish_ask("ready", "done")

    def cancel_ask(self) -> bool:
        """Esc: stop consuming the stream, keep what was written and mark it. False if nothing runs."""
        if not self.asking:
            return False
        self.workers.cancel_group(self, "ask")
        view = self.main_screen.thread.turn_view(self._ask_turn)
        if view is not None:
            view.stop("cancelled")
        self._finish_ask("cancelled", "cancelled: the partial answer is kept")
        return True

    def _finish_ask(self, kind: str, text: str) -> None:
        self._ask_id = None
        self.main_screen.status(kind, text)
        self.save_conversation()

    def save_conversation(self) -> None:
        try:
            self.history.save(self.conversation)
        except (OSError, ValueError) as exc:
            self.notify(f"could not save the conversation: {exc}", severity="warning")

    # --- citations
    def open_citation(self, turn_index: int, n: int) -> None:
        if not 0 <= turn_index < len(self.conversation.turns):
            return
        turn = self.conversation.turns[turn_index]
        citation = next((c for c in turn.answer.citations if c.n == n), None) if turn.answer else None
        passages = turn.passages
        hit = None
        if citation is not None:
            hit = next((h for h in passages if h.chunk.id == citation.chunk_id), None)
            if hit is None:  # cited a passage the answer does not carry (a draft's leaf): fetch it
                self.run_cited_chunk(turn_index, n, citation.chunk_id)
                return
        elif 1 <= n <= len(passages):
            hit = passages[n - 1]
        if hit is None:
            self.notify(f"no passage [{n}] in this answer", severity="warning")
            return
        self.main_screen.panel.open(n, hit, citation)

    @work(exclusive=True, group="neighbours", exit_on_error=False)
    async def run_cited_chunk(self, turn_index: int, n: int, chunk_id: str) -> None:
        backend = await self.ready_backend()
        chunks = await asyncio.to_thread(backend.neighbours, chunk_id, 0, 0)
        self.post_message(CitedChunk(n, turn_index, list(chunks)))

    def on_cited_chunk(self, message: CitedChunk) -> None:
        turn = self.conversation.turns[message.turn_index]
        citation = next((c for c in turn.answer.citations if c.n == message.n), None) if turn.answer else None
        if not message.chunks:
            self.notify(f"passage [{message.n}] is no longer in the library", severity="warning")
            return
        chunk = message.chunks[0]
        paper = next((r.paper for r in self.papers or [] if r.paper.arxiv_id == chunk.arxiv_id), None)
        self.main_screen.panel.open(message.n, Hit(chunk=chunk, score=0.0, source="cited", paper=paper), citation)

    def load_neighbours(self, chunk_id: str) -> None:
        self.run_neighbours(chunk_id)

    # --- the cited page in the system's PDF viewer (assistant/viewer.py builds the command)
    def open_cited_pdf(self, turn_index: int, n: int) -> None:
        turn = self.conversation.turns[turn_index] if 0 <= turn_index < len(self.conversation.turns) else None
        citation = next((c for c in turn.answer.citations if c.n == n), None) if turn and turn.answer else None
        if citation is None:
            self.notify(f"no citation [{n}] in this answer", severity="warning")
            return
        path = citation.pdf_path or next((r.paper.pdf_path for r in self.papers or []
                                          if r.paper.arxiv_id == citation.arxiv_id), None)
        self.open_pdf(path, citation.page_start)

    def open_pdf(self, path: str | None, page: int) -> None:
        self.run_open_pdf(path, page)

    @work(exclusive=True, group="viewer", exit_on_error=False)
    async def run_open_pdf(self, path: str | None, page: int) -> None:
        from assistant.viewer import open_pdf

        _, paged = await asyncio.to_thread(open_pdf, path, page, self.settings.pdf_viewer)
        at = f"at page {page}" if paged else f"(this viewer opens at page 1: the passage is on page {page})"
        self.notify(f"opened {Path(path or '').name} {at}", title="PDF")

    @work(exclusive=True, group="neighbours", exit_on_error=False)
    async def run_neighbours(self, chunk_id: str) -> None:
        backend = await self.ready_backend()
        chunks = await asyncio.to_thread(backend.neighbours, chunk_id, 1, 1)
        self.post_message(NeighboursLoaded(chunk_id, list(chunks)))

    def on_neighbours_loaded(self, message: NeighboursLoaded) -> None:
        self.main_screen.panel.show_neighbours(message.chunk_id, message.chunks)

    # --- the one handler for worker errors
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        group = event.worker.group
        text = str(error) or type(error).__name__
        self.notify(text, title=f"{group} failed", severity="error", timeout=10)
        if group == "ask" and self.asking:
            view = self.main_screen.thread.turn_view(self._ask_turn)
            if view is not None:
                view.stop("failed", text)
            self._finish_ask("error", f"the answer failed: {text}")
        elif group == "ingest":
            self._ingesting = False
            if self._library_screen is not None:
                self._library_screen.ingest_finished()
            self.main_screen.status("error", f"adding papers failed: {text}")
        elif group == "backend":
            self._engine_error = text
            self._engine_ready.set()  # waiting work fails with this reason instead of waiting forever
            self.main_screen.status("error", f"the engine could not start: {text}")

    # --- screens
    def action_help(self) -> None:
        from assistant.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_library(self) -> None:
        from assistant.tui.screens.library import LibraryScreen

        if self._library_screen is None:
            self._library_screen = LibraryScreen()
            self.install_screen(self._library_screen, "library")
        self.push_screen("library")
        if self.papers is not None:
            self._library_screen.show_papers(self.papers)

    def action_history(self) -> None:
        from assistant.tui.screens.history import HistoryScreen

        def chosen(conversation_id: str | None) -> None:
            if conversation_id:
                self.open_conversation(conversation_id)

        self.push_screen(HistoryScreen(self.history), chosen)

    def open_conversation(self, conversation_id: str) -> None:
        if self.asking:
            self.cancel_ask()
        try:
            self.conversation = self.history.load(conversation_id)
        except (OSError, ValueError) as exc:
            self.notify(f"could not open it: {exc}", severity="error")
            return
        known = {r.paper.arxiv_id for r in self.papers or []}
        self.set_scope(s for s in self.conversation.scope if s in known)
        self.main_screen.show_conversation(self.conversation)
        self.main_screen.status("ready", f"reopened: {self.conversation.title}")

    def action_new_conversation(self) -> None:
        if self.asking:
            self.cancel_ask()
        self.conversation = Conversation(scope=tuple(sorted(self.scope)))
        self.main_screen.show_conversation(self.conversation)
        self.main_screen.status("ready", "new conversation")


def create_app(assistant_factory: BackendFactory | None = None, settings: Settings | None = None,
               question: str | None = None) -> PaperAssistantApp:
    """The app, apart from the CLI. assistant_factory(settings) builds the engine (default: the real
    Assistant); tests pass a scripted one. question, if given, is asked as soon as the library is loaded."""
    return PaperAssistantApp(assistant_factory or default_factory, settings, question)
