"""The Textual front end. Only this package (and its tests) imports textual; the core never does."""
from __future__ import annotations

from assistant.tui.app import PaperAssistantApp, create_app

__all__ = ["PaperAssistantApp", "create_app"]
