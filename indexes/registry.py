"""Which secondary indexes (beside dense) the library keeps in sync, built from settings."""
from __future__ import annotations

from assistant.config import Settings
from indexes.base import Index


def build_extra_indexes(settings: Settings) -> dict[str, Index]:
    return {}
