"""Ask for what to add: arXiv ids, arXiv URLs, reading-list files (text/markdown with arXiv links), PDFs,
folders of PDFs, BibTeX files or a Zotero data folder."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

HELP = ("arXiv ids (1706.03762, 1706.03762v5), arXiv URLs, reading-list files, PDFs, folders of PDFs, a .bib "
        "file or a Zotero data folder, separated by spaces or commas (quote a path with spaces). arXiv papers "
        "come from the mirror folder first, then arXiv.")


def split_items(text: str) -> list[str]:
    """Items separated by spaces or commas; a quoted or existing path stays whole (commas and all)."""
    try:
        tokens = shlex.split(text)
    except ValueError:  # an unclosed quote: plain splitting
        tokens = text.split()
    items: list[str] = []
    for token in tokens:
        items += [token] if Path(token).expanduser().exists() else [t for t in re.split(r",+", token) if t]
    return items


class AddPapersScreen(ModalScreen[list[str]]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, mirror: Path | None = None) -> None:
        super().__init__()
        self.mirror = mirror

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.styled("Add papers", "bold"), classes="dialog-title")
            yield Static(Content(HELP + (f"\nMirror: {self.mirror}" if self.mirror else "")), classes="dialog-text")
            yield Input(placeholder="e.g. 1706.03762 https://arxiv.org/abs/1810.04805 ~/reading.md ~/papers/ refs.bib ~/Zotero", id="items")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add", variant="primary", id="add")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#items", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        items = split_items(self.query_one("#items", Input).value)
        if not items:
            self.notify("type at least one arXiv id, URL or file", severity="warning")
            return
        self.dismiss(items)

    def action_cancel(self) -> None:
        self.dismiss(None)
