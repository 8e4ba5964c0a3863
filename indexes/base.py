"""Small protocols every backend meets, so the engine can take any of them injected."""
from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from foundation.types import Chunk


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class Index(Protocol):
    """A searchable set of chunks keyed by chunk id (dense, ColBERT, BM25, ...)."""

    def add(self, chunks: Sequence[Chunk], progress: Callable[[int, int], None] | None = None) -> None:
        """Index chunks; progress(done, total) as work completes, where the index can tell."""

    def remove(self, chunk_ids: Sequence[str]) -> None: ...

    def chunk_ids(self) -> list[str]:
        """Every chunk id the index holds (the library compares them with the store to stay in sync)."""
        ...

    def search(self, query: str, k: int, arxiv_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, score) pairs, best first; arxiv_ids scopes the search to those papers."""
        ...


@runtime_checkable
class Reranker(Protocol):
    """An index that can also order a given set of candidates (ColBERT's exact MaxSim)."""

    def rerank(self, query: str, chunk_ids: Sequence[str]) -> list[tuple[str, float]]:
        """(chunk id, score) for those of chunk_ids the index holds, best first."""
        ...
