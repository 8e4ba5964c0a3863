"""paper-assistant: a retrieval-augmented research assistant over arXiv papers."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.api import Assistant
    from foundation.config import Settings

__all__ = ["Assistant", "Settings"]


def __getattr__(name: str):
    # Lazy: `import assistant` stays cheap; heavy backends load only when used.
    if name == "Assistant":
        from assistant.api import Assistant

        return Assistant
    if name == "Settings":
        from foundation.config import Settings

        return Settings
    raise AttributeError(name)
