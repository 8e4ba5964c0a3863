"""The conversation: one TurnView per question, newest at the bottom, scrolled as answers stream."""
from __future__ import annotations

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from assistant.tui.history import Conversation, Turn
from assistant.tui.widgets.turn_view import TurnView

WELCOME = ("Ask a question about your papers below; the answer streams in with [n] markers.\n"
           "Click a marker (or ctrl+r, then a digit) to read the cited passage.  "
           "ctrl+l library · ctrl+o history · f2 settings · f1 help")


class ThreadView(VerticalScroll, can_focus=False):
    def on_mount(self) -> None:
        self.mount(Static(Content(WELCOME), id="welcome"))

    def show(self, conversation: Conversation) -> None:
        self.remove_children()
        if not conversation.turns:
            self.mount(Static(Content(WELCOME), id="welcome"))
        else:
            self.mount_all([TurnView(t, i) for i, t in enumerate(conversation.turns)])
        self.call_after_refresh(self.scroll_end, animate=False)

    def add_turn(self, turn: Turn, index: int) -> TurnView:
        for welcome in self.query("#welcome"):
            welcome.remove()
        view = TurnView(turn, index)
        self.mount(view)
        self.call_after_refresh(self.scroll_end, animate=False)
        return view

    def turn_view(self, index: int) -> TurnView | None:
        for view in self.query(TurnView):
            if view.index == index:
                return view
        return None

    def follow(self) -> None:
        """Keep the newest text in view while streaming, unless the reader scrolled up."""
        if self.max_scroll_y - self.scroll_y <= 3:
            self.scroll_end(animate=False)
