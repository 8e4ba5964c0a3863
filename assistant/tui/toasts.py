"""Toasts carry data (reasons, paths, server errors): never markup, and control characters shown, not sent to
the terminal. First in the app's bases, so every screen's and widget's notify() comes through here."""
from __future__ import annotations

from foundation.terminal import inert


class InertToasts:
    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        super().notify(inert(str(message)), title=inert(title), severity=severity, timeout=timeout,  # type: ignore[misc]
                       markup=False)
