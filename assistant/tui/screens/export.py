"""Where to write the Markdown export, and whether it holds the last answer or the whole thread."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, Switch


class ExportScreen(ModalScreen[tuple[Path, bool]]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: Path, many: bool) -> None:
        super().__init__()
        self.default = default
        self.many = many

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.styled("Export as Markdown", "bold"), classes="dialog-title")
            yield Static(Content("Answer text, references with the quoted sentences, and BibTeX."), classes="dialog-text")
            yield Input(str(self.default), id="path")
            with Horizontal(classes="switch-row"):
                yield Switch(value=False, id="whole", disabled=not self.many)
                yield Label("the whole thread (else the last answer)")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self.notify("give a file path", severity="warning")
            return
        self.dismiss((Path(path).expanduser(), self.query_one("#whole", Switch).value))

    def action_cancel(self) -> None:
        self.dismiss(None)
