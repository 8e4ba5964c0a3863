"""What the agent may do to find evidence: every Retriever mode, neighbours, metadata, paper scoping."""
from __future__ import annotations

import re
from typing import Any, Sequence

from foundation.config import Settings
from assistant.engine.retrieve import Retrieval
from foundation.types import Hit


def normalize_query(query: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", query.lower()))


def near_duplicate(query: str, issued: Sequence[str], threshold: float = 0.8) -> bool:
    """Same words (Jaccard >= threshold) as a query already issued: a small model repeating itself."""
    words = set(normalize_query(query).split())
    if not words:
        return True
    for old in issued:
        other = set(normalize_query(old).split())
        if other and len(words & other) / len(words | other) >= threshold:
            return True
    return False


class Tools:
    """Modes come from the Retriever at run time, so every index plugs in as it lands."""

    def __init__(self, retriever, settings: Settings):
        self.retriever = retriever
        self.library = retriever.library
        self.settings = settings

    def modes(self) -> list[str]:
        return self.retriever.modes()

    def search(self, query: str, mode: str, k: int, papers: Sequence[str] | None = None,
               extra_vectors: Sequence[Any] = ()) -> list[Hit]:
        return self.retriever.search(query, mode, k, papers or None, extra_vectors)

    def retrieve(self, query: str, mode: str, k: int, papers: Sequence[str] | None = None,
                 extra_vectors: Sequence[Any] = ()) -> Retrieval:
        """Passages with the gate's retrieval scores, each index searched once (engine/retrieve.py)."""
        return self.retriever.retrieve(query, mode, k, papers or None, extra_vectors)

    def neighbours(self, hit: Hit, before: int = 1, after: int = 1) -> list[Hit]:
        """The passages around a hit in reading order ("read on in this section of paper X")."""
        chunks = [c for c in self.library.store.neighbours(hit.chunk.id, before, after) if c.id != hit.chunk.id]
        return [Hit(chunk=c, score=hit.score, rank=0, source="neighbour", paper=hit.paper) for c in chunks]

    def resolve_papers(self, names: Sequence[str]) -> list[str]:
        """arXiv ids of papers named by id or unambiguous title words; names that match nothing are dropped."""
        papers = self.library.paper_map()
        found: list[str] = []
        for name in names:
            name = name.strip()
            if not name:
                continue
            match = re.search(r"\d{4}\.\d{4,5}", name)
            if match and match.group(0) in papers:
                found.append(match.group(0))
                continue
            key = normalize_query(name)
            if len(key) < 4:
                continue
            hits = [pid for pid, p in papers.items() if key and key in normalize_query(p.title)]
            if len(hits) == 1:
                found.append(hits[0])
        return list(dict.fromkeys(found))

    def paper_ids_in(self, question: str) -> list[str]:
        """arXiv ids written in the question itself (the user scoping the question to a paper)."""
        papers = self.library.paper_map()
        return [m for m in dict.fromkeys(re.findall(r"\d{4}\.\d{4,5}", question)) if m in papers]

    def is_empty(self) -> bool:
        return self.library.dense.count() == 0
