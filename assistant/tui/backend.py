"""What the TUI needs from the engine: the public methods of assistant.api.Assistant, nothing else.

Tests pass any object with these methods (a scripted fake); the app builds the real Assistant by default.
"""
from __future__ import annotations

from typing import AsyncIterator, Callable, Iterable, Protocol, Sequence

from foundation.config import Settings
from foundation.types import AskEvent, Chunk, Hit, IngestResult, PaperRecord, ProgressEvent


class Backend(Protocol):
    settings: Settings

    def papers(self) -> list[PaperRecord]: ...

    def remove(self, arxiv_id: str) -> bool: ...

    def neighbours(self, chunk_id: str, before: int = 1, after: int = 1) -> list[Chunk]: ...

    def modes(self) -> list[str]: ...

    async def aingest(self, items: Iterable[str] | str,
                      progress: Callable[[ProgressEvent], None] = ...) -> list[IngestResult]: ...

    async def asearch(self, query: str, k: int | None = None, mode: str | None = None,
                      papers: Sequence[str] | None = None) -> list[Hit]: ...

    def aask_stream(self, question: str, papers: Sequence[str] | None = None,
                    mode: str | None = None) -> AsyncIterator[AskEvent]: ...

    def close(self) -> None: ...


BackendFactory = Callable[[Settings], Backend]


def default_factory(settings: Settings) -> Backend:
    """The real engine. Construction is instant; indexes and models load on first use (in a worker).
    A model server it starts stops when the app quits, unless server_keep_alive_s is negative."""
    from assistant.api import Assistant

    return Assistant(settings, stop_server_on_exit=True)
