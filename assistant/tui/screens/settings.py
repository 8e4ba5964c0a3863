"""Settings that change how questions are answered; saved to the config file (TOML)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, Switch

from foundation.config import Settings

# Switches offered when Settings has the field (the engine and RAPTOR add theirs as they land).
TOGGLES = (("hyde", "HyDE: also search with a hypothetical answer"),
           ("agentic", "Agentic engine: plan, search in rounds, verify citations"),
           ("raptor", "RAPTOR: search the summary trees too"))
TEXTS = (("llm_base_url", "Model endpoint (OpenAI-compatible; empty: the app manages a local vLLM)"),
         ("llm_model", "Model name"))


class SettingsScreen(ModalScreen[dict]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, settings: Settings, modes: list[str]) -> None:
        super().__init__()
        self.settings = settings
        self.modes = list(dict.fromkeys([*modes, settings.retrieval_mode])) if modes else [settings.retrieval_mode]
        self.toggles = [(k, label) for k, label in TOGGLES if k in Settings.model_fields]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Content.styled("Settings", "bold"), classes="dialog-title")
            with VerticalScroll(id="settings-fields"):
                yield Label("Retrieval mode (the ones this library serves; collapsed = RAPTOR summary trees)")
                yield Select([(m, m) for m in self.modes], value=self.settings.retrieval_mode, allow_blank=False,
                             id="retrieval_mode")
                for key, label in self.toggles:
                    with Horizontal(classes="switch-row"):
                        yield Switch(value=bool(getattr(self.settings, key)), id=key)
                        yield Label(label)
                for key, label in TEXTS:
                    yield Label(label)
                    yield Input(str(getattr(self.settings, key) or ""), id=key)
            yield Static(Content("ctrl+s save · esc cancel"), classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#retrieval_mode", Select).focus()

    def changes(self) -> dict:
        new: dict = {"retrieval_mode": self.query_one("#retrieval_mode", Select).value}
        for key, _ in self.toggles:
            new[key] = self.query_one(f"#{key}", Switch).value
        for key, _ in TEXTS:
            value = self.query_one(f"#{key}", Input).value.strip()
            new[key] = value or (None if key == "llm_base_url" else getattr(self.settings, key))
        return {k: v for k, v in new.items() if v != getattr(self.settings, k)}

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_save(self) -> None:
        self.dismiss(self.changes())

    def action_cancel(self) -> None:
        self.dismiss(None)
