"""The ask screen: the thread of questions and streamed answers, the status line, the citation panel."""
from __future__ import annotations


from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from assistant.tui.history import Conversation, Turn
from assistant.tui.widgets.citation_panel import CitationPanel
from assistant.tui.widgets.status_line import StatusLine
from assistant.tui.widgets.thread_view import ThreadView
from assistant.tui.widgets.turn_view import SourcesList, TurnView
from assistant.tui.hosts import MainHost
from foundation.types import AskEvent



class MainScreen(Screen):
    BINDINGS = [
        Binding("escape", "escape", "Cancel / close", show=True),
        Binding("ctrl+r", "sources", "Sources"),
        Binding("ctrl+l", "app.library", "Library"),
        Binding("ctrl+o", "app.history", "History"),
        Binding("ctrl+n", "app.new_conversation", "New"),
        Binding("ctrl+s", "app.export", "Export"),
        Binding("f2", "app.settings", "Settings"),
    ]

    app: "MainHost"  # type: ignore[assignment]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        with Horizontal(id="body"):
            yield ThreadView(id="thread")
            yield CitationPanel(id="citation")
        yield StatusLine(id="status")
        yield Input(placeholder="Ask a question about your papers (enter asks, esc cancels)", id="question")
        yield Footer()

    def __init__(self) -> None:
        super().__init__()
        self._pa_status = ("loading", "starting…")
        self._pa_context = ""

    def on_mount(self) -> None:
        self.query_one("#question", Input).focus()
        self.status(*self._pa_status)
        self.context(self._pa_context)

    # --- pieces
    @property
    def thread(self) -> ThreadView:
        return self.query_one(ThreadView)

    @property
    def panel(self) -> CitationPanel:
        return self.query_one(CitationPanel)

    def status(self, kind: str, text: str) -> None:
        """Show what the engine is doing; kept until the screen is mounted if it is not yet."""
        self._pa_status = (kind, text)
        for line in self.query(StatusLine):
            line.show(kind, text)

    def context(self, text: str) -> None:
        self._pa_context = text
        for line in self.query(StatusLine):
            line.context(text)

    # --- asking
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "question":
            return
        question = event.value.strip()
        if not question:
            return
        if self.app.ask(question):
            event.input.value = ""

    def start_turn(self, turn: Turn, index: int) -> TurnView:
        self.panel.close()
        return self.thread.add_turn(turn, index)

    def apply_event(self, index: int, event: AskEvent) -> None:
        """Show one streamed event: tokens extend the answer; any other kind's text goes to the status line."""
        view = self.thread.turn_view(index)
        if view is None:
            return
        if event.kind == "token":
            view.append(event.text)
            self.thread.call_after_refresh(self.thread.follow)
            if not self.query_one(StatusLine).query_one("#status-text").has_class("-generate"):
                self.status("generate", "writing the answer")
        elif event.kind == "answer" and event.answer is not None:
            view.finish(event.answer)
            self.thread.call_after_refresh(self.thread.follow)
        else:
            if event.kind == "passages":
                view.turn.hits = event.hits
            if event.kind == "error":
                self.notify(event.text, title="answer", severity="warning")
            if event.text:
                self.status(event.kind, event.text)

    def show_conversation(self, conversation: Conversation) -> None:
        self.panel.close()
        self.thread.show(conversation)

    # --- citations
    def action_open_citation(self, turn_index: int, n: int) -> None:
        self.app.open_citation(turn_index, n)

    def on_sources_list_open(self, message: SourcesList.Open) -> None:
        self.app.open_citation(message.turn_index, message.n)

    def on_citation_panel_neighbours_wanted(self, message: CitationPanel.NeighboursWanted) -> None:
        self.app.load_neighbours(message.chunk_id)

    def action_sources(self) -> None:
        """Focus the sources of the newest answer that has any (then a digit or enter opens one)."""
        lists = [s for s in self.query(SourcesList) if s.display]
        if not lists:
            self.notify("no citations yet", severity="information")
            return
        lists[-1].focus()
        if lists[-1].highlighted is None:
            lists[-1].highlighted = 0

    def action_escape(self) -> None:
        if self.app.cancel_ask():
            return
        if self.panel.is_open:
            self.panel.close()
        self.query_one("#question", Input).focus()
