"""Typed messages that the app's workers post; handlers on the app update the screens."""
from __future__ import annotations

from textual.message import Message

from foundation.types import AskEvent, Chunk, IngestResult, PaperRecord, ProgressEvent


class BackendReady(Message):
    """The engine object exists (indexes and models may still be loading)."""


class Warmed(Message):
    """Heavy models are loaded."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class PapersLoaded(Message):
    def __init__(self, records: list[PaperRecord]) -> None:
        super().__init__()
        self.records = records


class ModesLoaded(Message):
    def __init__(self, modes: list[str]) -> None:
        super().__init__()
        self.modes = modes


class AskUpdate(Message):
    """One streamed AskEvent of the answer with id ask_id (stale ids are ignored)."""

    def __init__(self, ask_id: int, event: AskEvent) -> None:
        super().__init__()
        self.ask_id = ask_id
        self.event = event


class AskDone(Message):
    def __init__(self, ask_id: int) -> None:
        super().__init__()
        self.ask_id = ask_id


class IngestUpdate(Message):
    def __init__(self, event: ProgressEvent) -> None:
        super().__init__()
        self.event = event


class IngestDone(Message):
    def __init__(self, results: list[IngestResult]) -> None:
        super().__init__()
        self.results = results


class PaperRemoved(Message):
    def __init__(self, arxiv_id: str, removed: bool) -> None:
        super().__init__()
        self.arxiv_id = arxiv_id
        self.removed = removed


class NeighboursLoaded(Message):
    def __init__(self, chunk_id: str, chunks: list[Chunk]) -> None:
        super().__init__()
        self.chunk_id = chunk_id
        self.chunks = chunks


class TreesLoaded(Message):
    """arXiv ids whose RAPTOR summary tree is built and current."""

    def __init__(self, with_tree: set[str]) -> None:
        super().__init__()
        self.with_tree = with_tree


class TreeBuilt(Message):
    def __init__(self, summary: str) -> None:
        super().__init__()
        self.summary = summary


class Summarized(Message):
    """A writer's draft (assistant.summaries.draft.Draft) of some papers, shown as a turn of the thread."""

    def __init__(self, draft) -> None:
        super().__init__()
        self.draft = draft


class CitedChunk(Message):
    """The passage behind a citation that was not among the answer's passages (e.g. a draft's leaf)."""

    def __init__(self, n: int, turn_index: int, chunks: list[Chunk]) -> None:
        super().__init__()
        self.n = n
        self.turn_index = turn_index
        self.chunks = chunks


class Notice(Message):
    """A line the engine wants the user to see once (e.g. that it started the local model server)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
