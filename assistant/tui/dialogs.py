"""The export and settings dialogs: their screens' results applied to the app (write the Markdown
export; validate, save and apply settings). Mixed into `PaperAssistantApp`, whose state it uses."""
from __future__ import annotations

from pathlib import Path

from foundation.config import Settings


class DialogsMixin:
    """Relies on the app's conversation, settings, backend, retrieval_modes, asking, _ingesting,
    _settings, _engine_ready, _engine_error, papers, start_backend, _update_context, and Textual's
    notify and push_screen."""

    def action_export(self) -> None:
        from assistant.tui.export import slug
        from assistant.tui.screens.export import ExportScreen

        if not self.conversation.turns:
            self.notify("nothing to export yet: ask a question first", severity="warning")
            return
        default = self.settings.home / "exports" / f"{slug(self.conversation.turns[-1].question)}.md"
        self.push_screen(ExportScreen(default, many=len(self.conversation.turns) > 1), self._export)

    def _export(self, choice: tuple[Path, bool] | None) -> None:
        from assistant.tui.export import write_export

        if not choice:
            return
        path, whole = choice
        try:
            written = write_export(self.conversation, path, whole)
        except (OSError, ValueError) as exc:
            self.notify(str(exc), title="export failed", severity="error")
            return
        self.notify(str(written), title="exported")

    def action_settings(self) -> None:
        from assistant.tui.screens.settings import SettingsScreen

        self.push_screen(SettingsScreen(self.settings, self.retrieval_modes), self.apply_settings)

    def apply_settings(self, changes: dict | None) -> None:
        """Validate, save to the config file, and apply: knobs read per call change in place; a new
        model endpoint means a new engine object (built in a worker)."""
        from foundation.config import save_settings

        if not changes:
            return
        current = self.settings
        try:
            new = Settings(**{**current.model_dump(), **changes})
        except ValueError as exc:
            self.notify(str(exc), title="settings not saved", severity="error")
            return
        try:
            path = save_settings(new, sorted(changes))
        except OSError as exc:
            self.notify(str(exc), title="settings not saved", severity="error")
            return
        rebuild = any(k.startswith("llm_") for k in changes)
        if rebuild and (self.asking or self._ingesting):
            self.notify("saved; the new model is used after the running work ends and the app restarts",
                        severity="warning")
        elif rebuild and self.backend is not None:
            old, self.backend = self.backend, None
            self._engine_ready.clear()
            self._settings = new
            old.close()
            self.papers = None
            self._engine_error = ""
            self.start_backend()
        else:
            for key, value in changes.items():
                setattr(current, key, getattr(new, key))
        self._update_context()
        self.notify(f"saved to {path}", title="settings")
