"""Saved conversations, newest first: enter reopens one, d deletes it."""
from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from assistant.tui.history import HistoryStore
from foundation.terminal import inert


class HistoryScreen(ModalScreen[str]):
    BINDINGS = [Binding("escape", "cancel", "Back"), Binding("d", "delete", "Delete")]

    def __init__(self, store: HistoryStore) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Content.styled("History", "bold"), classes="dialog-title")
            yield OptionList(id="conversations")
            yield Static(Content("enter reopen · d delete · esc back"), classes="dialog-hint")

    def on_mount(self) -> None:
        self._fill()
        options = self.query_one(OptionList)
        options.focus()
        if options.option_count:
            options.highlighted = 0

    def _fill(self) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        for c in self.store.list():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
            n = len(c.turns)
            options.add_option(Option(Content.assemble(inert(c.title or "(untitled)"),
                                                       (f"   {n} question{'s' if n != 1 else ''} · {when}", "dim")),
                                      id=c.id))
        if not options.option_count:
            options.add_option(Option(Content.styled("no saved conversations yet", "dim"), disabled=True))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(event.option.id)

    def action_delete(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return
        option = options.get_option_at_index(options.highlighted)
        if option.id:
            self.store.delete(option.id)
            self._fill()
            if options.option_count:
                options.highlighted = min(options.highlighted or 0, options.option_count - 1)

    def action_cancel(self) -> None:
        self.dismiss(None)
