"""Retrieval over summary trees: RAPTOR's collapsed tree (every level in one pool, filled to a token budget),
level filters for the retrieval mode, and the leaf passages under a node (what a citation of a summary means)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from foundation.types import Chunk
from indexes.raptor.nodes import TOPIC_LEVEL
from indexes.raptor.store import TreeLibrary
from indexes.store import Store


def fill_budget(ranked: Sequence[tuple[str, float]], tokens: Mapping[str, int], budget: int) -> list[tuple[str, float]]:
    """RAPTOR's collapsed-tree selection: take nodes best first until the next would pass the budget."""
    out: list[tuple[str, float]] = []
    used = 0
    for cid, score in ranked:
        t = tokens.get(cid)
        if t is None:
            continue
        if used + t > budget:
            break
        out.append((cid, score))
        used += t
    return out


def parse_levels(mode: str) -> list[int] | None:
    """"collapsed" -> None (every level); "collapsed:0,1" -> [0, 1]; "collapsed:topic" -> [9]."""
    if ":" not in mode:
        return None
    spec = mode.split(":", 1)[1]
    levels = []
    for part in spec.replace(";", ",").split(","):
        part = part.strip().lower()
        if part in ("topic", "topics"):
            levels.append(TOPIC_LEVEL)
        elif part in ("leaf", "leaves"):
            levels.append(0)
        elif "-" in part:
            lo, hi = part.split("-", 1)
            levels.extend(range(int(lo), int(hi) + 1))
        elif part:
            try:
                levels.append(int(part))
            except ValueError:
                raise ValueError(f"bad level filter {part!r} in retrieval mode {mode!r} (use e.g. collapsed:0,1)") from None
    return sorted(set(levels)) or None


def collapsed_search(library: TreeLibrary, query: str | np.ndarray, k: int, papers: Sequence[str] | None = None,
                     levels: Sequence[int] | None = None, budget: int | None = None) -> list[tuple[str, float]]:
    """Collapsed-tree retrieval over the library: cosine over every level (or `levels`) in one pool,
    best first, filled up to the token budget (settings.collapsed_budget_tokens) and at most k nodes.
    Papers without a tree simply contribute leaves."""
    budget = budget or library.settings.collapsed_budget_tokens
    vector = library.embedder.embed([query])[0] if isinstance(query, str) else np.asarray(query)
    pool = library.dense.search_vector(vector, max(4 * k, 50), papers, levels=list(levels) if levels else None)
    chunks = library.store.chunks([cid for cid, _ in pool])
    tokens = {cid: (c.n_tokens or max(1, len(c.text) // 4)) for cid, c in chunks.items()}
    return fill_budget(pool, tokens, budget)[:k]


def leaves_of(store: Store, chunk_id: str) -> list[Chunk]:
    """The leaf passages under a node (the node itself if it is a leaf), in reading order."""
    frontier = [chunk_id]
    leaves: dict[str, Chunk] = {}
    seen: set[str] = set()
    while frontier:
        got = store.chunks([i for i in frontier if i not in seen])
        seen.update(frontier)
        frontier = []
        for c in got.values():
            if c.level == 0:
                leaves[c.id] = c
            else:
                frontier.extend(c.children)
    return sorted(leaves.values(), key=lambda c: (c.arxiv_id, c.char_start))


def resolve_leaf(library: TreeLibrary, chunk: Chunk, vector: np.ndarray) -> Chunk | None:
    """The leaf passage under `chunk` (itself if a leaf) nearest to `vector` (a citing sentence's
    embedding): the first of its leaves in a dense search; None when its leaves are gone."""
    if chunk.level == 0:
        return chunk
    leaves = leaves_of(library.store, chunk.id)
    if not leaves:
        return None
    ids = {c.id: c for c in leaves}
    papers = sorted({c.arxiv_id for c in leaves})
    for cid, _ in library.dense.search_vector(vector, 50, papers, levels=(0,)):
        if cid in ids:
            return ids[cid]
    vectors = np.stack([library.embedder.embed([c.text])[0] for c in leaves])
    return leaves[int(np.argmax(vectors @ np.asarray(vector, dtype=np.float32)))]
