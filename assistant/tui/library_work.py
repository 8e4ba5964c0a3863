"""Adding, removing and summarising papers: the library's long-running work (ingest, summary-tree
builds, writers' summaries, removal) as workers that post typed messages, and the handlers of those
messages. Mixed into `PaperAssistantApp`, whose state and helpers it uses."""
from __future__ import annotations

import asyncio
from typing import Iterable

from textual import work

from assistant.tui.history import Turn
from assistant.tui.messages import AskUpdate, IngestDone, IngestUpdate, PaperRemoved, Summarized, TreeBuilt
from foundation.types import Answer, PaperStatus


class LibraryWorkMixin:
    """Library work for the app. Relies on the app's backend, ready_backend, main_screen,
    _library_screen, _ingesting, scope, conversation, settings, load_papers / load_modes / load_trees,
    save_conversation, and Textual's notify, post_message and push_screen."""

    # --- summary trees and writers' summaries
    def engine_offers(self, method: str) -> bool:
        """Whether the engine offers this API (RAPTOR's build_tree / summarize landed later than the rest)."""
        return self.backend is not None and hasattr(self.backend, method)

    def build_tree(self, ids: list[str]) -> None:
        if self._ingesting:
            self.notify("papers are being added or summarised; wait for that to finish", severity="warning")
            return
        self._ingesting = True
        self.main_screen.status("ingest", f"building summary trees for {len(ids)} paper(s)…")
        if self._library_screen is not None:
            self._library_screen.ingest_started(len(ids), "building summary trees")
        self.run_build_tree(ids)

    @work(group="ingest", exit_on_error=False)
    async def run_build_tree(self, ids: list[str]) -> None:
        backend = await self.ready_backend()
        report = await asyncio.to_thread(backend.build_tree, ids, lambda e: self.post_message(IngestUpdate(e)))
        failed = getattr(report, "papers_failed", {}) or {}
        built = getattr(report, "papers_built", [])
        self.post_message(TreeBuilt(f"{len(built)} tree(s) built, {len(failed)} failed"
                                    + "".join(f"; {k}: {v}" for k, v in list(failed.items())[:3])))

    def on_tree_built(self, message: TreeBuilt) -> None:
        self._ingesting = False
        self.notify(message.summary, title="summary trees")
        self.main_screen.status("ready", message.summary)
        if self._library_screen is not None:
            self._library_screen.ingest_finished()
        self.load_trees()

    def summarize(self, ids: list[str]) -> None:
        self.main_screen.status("plan", f"summarising {len(ids)} paper(s)…")
        self.run_summarize(ids)

    @work(exclusive=True, group="summarize", exit_on_error=False)
    async def run_summarize(self, ids: list[str]) -> None:
        backend = await self.ready_backend()
        draft = await asyncio.to_thread(
            backend.summarize, ids, None, "short", "summary",
            lambda e: self.post_message(AskUpdate(-1, _status_event(e.message))) if e.message else None)
        self.post_message(Summarized(draft))

    def on_summarized(self, message: Summarized) -> None:
        d = message.draft
        answer = Answer(question=f"Summary of {d.subject}", text=d.text, citations=d.citations, passages=d.sources,
                        model=d.model, prompt=d.prompt, timings=d.timings)
        turn = Turn(question=f"Summarise: {d.subject}", text=d.text, answer=answer, state="done")
        self.conversation.turns.append(turn)
        self.main_screen.start_turn(turn, len(self.conversation.turns) - 1)
        self.main_screen.status("ready", "summary written")
        self.save_conversation()

    # --- adding and removing papers
    def offer_ingest(self, question: str) -> None:
        from assistant.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_add_papers()

        self.push_screen(ConfirmScreen(question, yes="Add papers", no="Later"), answered)

    def action_add_papers(self) -> None:
        from assistant.tui.screens.add_papers import AddPapersScreen

        def chosen(items: list[str] | None) -> None:
            if items:
                self.ingest(items)

        self.push_screen(AddPapersScreen(mirror=self.settings.mirror), chosen)

    def ingest(self, items: Iterable[str]) -> bool:
        if self._ingesting:
            self.notify("papers are being added already; wait for that to finish", severity="warning")
            return False
        self._ingesting = True
        items = list(items)
        self.main_screen.status("ingest", f"adding {len(items)} item(s)…")
        if self._library_screen is not None:
            self._library_screen.ingest_started(len(items))
        self.run_ingest(items)
        return True

    @work(group="ingest", exit_on_error=False)
    async def run_ingest(self, items: list[str]) -> None:
        backend = await self.ready_backend()
        results = await backend.aingest(items, progress=lambda e: self.post_message(IngestUpdate(e)))
        self.post_message(IngestDone(list(results)))

    def on_ingest_update(self, message: IngestUpdate) -> None:
        e = message.event
        if e.total:
            self.main_screen.status("ingest", f"adding papers: {e.stage} {e.item} {e.done}/{e.total}".replace("  ", " "))
        if self._library_screen is not None:
            self._library_screen.ingest_progress(e)

    def on_ingest_done(self, message: IngestDone) -> None:
        self._ingesting = False
        results = message.results
        failed = [r for r in results if r.status == PaperStatus.failed]
        ok = [r for r in results if r.status == PaperStatus.ok]
        new = [r for r in ok if not r.skipped]
        summary = f"{len(new)} added, {len(ok) - len(new)} already there, {len(failed)} failed"
        self.notify(summary, title="add papers", severity="warning" if failed else "information")
        for r in failed:  # a bad item's id is its error message: don't say it twice
            title = "could not add" if r.arxiv_id == r.reason else f"could not add {r.arxiv_id}"[:60]
            self.notify(r.reason, title=title, severity="error", timeout=10)
        self.main_screen.status("ready", summary)
        if self._library_screen is not None:
            self._library_screen.ingest_finished()
        self.load_papers()
        if new:
            self.load_modes()

    def remove_paper(self, arxiv_id: str) -> None:
        self.run_remove(arxiv_id)

    @work(group="library", exit_on_error=False)
    async def run_remove(self, arxiv_id: str) -> None:
        backend = await self.ready_backend()
        removed = await asyncio.to_thread(backend.remove, arxiv_id)
        self.post_message(PaperRemoved(arxiv_id, bool(removed)))

    def on_paper_removed(self, message: PaperRemoved) -> None:
        if message.removed:
            self.scope.discard(message.arxiv_id)
            self.notify(f"removed {message.arxiv_id}", title="library")
        else:
            self.notify(f"{message.arxiv_id} is not in the library", severity="warning")
        self.load_papers()


def _status_event(text: str):
    from foundation.types import AskEvent

    return AskEvent(kind="status", text=text)
