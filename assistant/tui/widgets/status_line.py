"""One line under the thread: what the engine is doing (any AskEvent kind), and the question's scope."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static
from foundation.terminal import inert

# Icons for the event kinds known today; any other kind still shows its text.
ICONS = {"plan": "◆", "search": "⌕", "passages": "≡", "verify": "✓", "status": "●", "error": "✗",
         "ingest": "⇣", "ready": "●", "loading": "○", "cancelled": "■"}


class StatusLine(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static(id="status-text")
        yield Static(id="status-context")

    def show(self, kind: str, text: str) -> None:
        label = self.query_one("#status-text", Static)
        label.update(Content(f"{ICONS.get(kind, '●')} {inert(text)}"))
        for cls in list(label.classes):
            if cls.startswith("-"):
                label.remove_class(cls)
        label.add_class(f"-{kind}")

    def context(self, text: str) -> None:
        self.query_one("#status-context", Static).update(Content(inert(text)))
