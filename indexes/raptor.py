"""RAPTOR summary tree (Sarthi et al. 2024): leaves -> cluster summaries -> a paper summary, and a
corpus level of topic summaries over the paper summaries.

Summary nodes are ordinary `Chunk`s with `level > 0` and `children` ids, stored in the SQLite store and
the dense index like leaves, so retrieval can mix levels and a citation of a summary resolves to its
leaf passages and their pages (`leaves_of`). Bookkeeping lives beside the index in `raptor.sqlite`:

- trees:  per paper, the hash of the leaves the tree was built from and its root (incremental).
- plans:  the clusters chosen for each layer, saved before summarising it (resume: same plan, same ids).
- nodes:  kind, vector and notes (retried, capped, split, extractive fallback) of every summary.
- topics: corpus clusters (member papers) and their status; `stale` after a member paper is removed.
- runs:   build timings, for the build rate in `raptor status`.

A summary's id derives from its children's ids, and each summary is written as soon as it is made,
so a killed build continues where it stopped and nothing finished is summarised again.

Levels: 0 = passage; 1..8 = paper-tree layers (the paper summary is the top one); 9 = corpus topics
(arxiv_id "_corpus", so a `papers=` filter leaves them out).

This module holds retrieval over the tree, its bookkeeping and upkeep; the builder is in raptor_build.py,
shared levels and settings in raptor_config.py, reply clean-up in raptor_text.py (all re-exported here).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from assistant.llm_protocol import LLMError
from assistant.types import Chunk, ProgressEvent
# Re-exported: callers and tests import the whole summary-tree API from indexes.raptor.
from indexes.raptor_build import TreeBuilder, _Job  # noqa: F401
from indexes.raptor_config import (CORPUS_ID, MAX_TREE_LEVEL, PROMPT_OVERHEAD_TOKENS, TOKENIZER_MARGIN,  # noqa: F401
                                   TOPIC_LEVEL, BuildReport, Progress, TreeConfig, TreeStatus, node_id,
                                   server_context)
from indexes.raptor_text import (cap_reply, clean_summary, cut_to_sentence, looks_runaway,  # noqa: F401
                                 split_text)


def _quiet(_: ProgressEvent) -> None:
    pass


# --- retrieval helpers (tested with fixed embeddings)

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


def collapse_rank(query: np.ndarray, ids: Sequence[str], vectors: np.ndarray, levels: Sequence[int],
                  tokens: Sequence[int], budget: int, only_levels: Iterable[int] | None = None) -> list[tuple[str, float]]:
    """Collapsed tree over in-memory vectors: cosine over every node (of the allowed levels), filled to budget."""
    vectors = np.asarray(vectors, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    sims = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q) + 1e-12)
    allowed = set(only_levels) if only_levels is not None else None
    order = [i for i in np.argsort(-sims, kind="stable") if allowed is None or levels[i] in allowed]
    return fill_budget([(ids[i], float(sims[i])) for i in order], {ids[i]: tokens[i] for i in order}, budget)


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


def collapsed_search(library, query: str | np.ndarray, k: int, papers: Sequence[str] | None = None,
                     levels: Sequence[int] | None = None, budget: int | None = None) -> list[tuple[str, float]]:
    """Collapsed-tree retrieval over the library: cosine over every level (or `levels`) in one pool,
    best first, filled up to the token budget (settings.collapsed_budget_tokens) and at most k nodes.
    Papers without a tree simply contribute leaves."""
    budget = budget or getattr(library.settings, "collapsed_budget_tokens", 2000)
    vector = library.embedder.embed([query])[0] if isinstance(query, str) else np.asarray(query)
    pool = library.dense.search_vector(vector, max(4 * k, 50), papers, levels=list(levels) if levels else None)
    chunks = library.store.chunks([cid for cid, _ in pool])
    tokens = {cid: (c.n_tokens or max(1, len(c.text) // 4)) for cid, c in chunks.items()}
    return fill_budget(pool, tokens, budget)[:k]


# --- bookkeeping

class RaptorDB:
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS trees (arxiv_id TEXT PRIMARY KEY, leaf_hash TEXT, root_id TEXT, depth INTEGER,
        n_summaries INTEGER, seconds REAL, built_at REAL);
    CREATE TABLE IF NOT EXISTS plans (arxiv_id TEXT, level INTEGER, input_hash TEXT, clusters TEXT,
        PRIMARY KEY (arxiv_id, level));
    CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, arxiv_id TEXT, level INTEGER, kind TEXT,
        vector BLOB, note TEXT DEFAULT '');
    CREATE INDEX IF NOT EXISTS nodes_by_paper ON nodes(arxiv_id);
    CREATE TABLE IF NOT EXISTS topics (id TEXT PRIMARY KEY, members TEXT, status TEXT, updated_at REAL);
    CREATE TABLE IF NOT EXISTS runs (started REAL, seconds REAL, summaries INTEGER, llm_seconds REAL,
        papers INTEGER, report TEXT);
    """

    def __init__(self, path: Path):
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(self.SCHEMA)
        self.lock = threading.Lock()

    def run(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self.lock:
            self.db.execute(sql, args)
            self.db.commit()

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.lock:
            self.db.executemany(sql, list(rows))
            self.db.commit()

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.db.close()


class RaptorTree(TreeBuilder):
    """Builds and maintains the summary trees of a Library. One builder per index at a time.
    The build pipeline itself is the `TreeBuilder` mixin (indexes/raptor_build.py)."""

    def __init__(self, library, llm: Any = None, config: TreeConfig | None = None):
        self.library = library
        self.store = library.store
        self.dense = library.dense
        self.embedder = library.embedder
        self.llm = llm
        self.config = config or TreeConfig.from_settings(library.settings, llm)
        self.prompts_dir = library.settings.prompts_dir
        self.db = RaptorDB(library.settings.index_dir / "raptor.sqlite")
        self._report = BuildReport()
        self._lock = threading.Lock()

    # --- reading
    def tree_papers(self) -> dict[str, str]:
        """arxiv_id -> root id, for papers whose tree is complete and current."""
        return {a: r for a, r in self.db.rows("SELECT arxiv_id, root_id FROM trees")}

    def has_tree(self, arxiv_id: str) -> bool:
        return bool(self.db.rows("SELECT 1 FROM trees WHERE arxiv_id=?", (arxiv_id,)))

    def root_of(self, arxiv_id: str) -> Chunk | None:
        rows = self.db.rows("SELECT root_id FROM trees WHERE arxiv_id=?", (arxiv_id,))
        return self.store.chunks([rows[0][0]]).get(rows[0][0]) if rows else None

    def layers_of(self, arxiv_id: str) -> list[list[Chunk]]:
        """The paper's summary layers, top (paper summary) first."""
        nodes = self.store.chunks_of(arxiv_id, level=None)
        by_level: dict[int, list[Chunk]] = {}
        for c in nodes:
            if c.level > 0:
                by_level.setdefault(c.level, []).append(c)
        return [by_level[lv] for lv in sorted(by_level, reverse=True)]

    def leaves_of(self, chunk_id: str) -> list[Chunk]:
        return leaves_of(self.store, chunk_id)

    def status(self) -> TreeStatus:
        papers = [r.paper.arxiv_id for r in self.store.papers() if r.status.value == "ok"]
        trees = self.tree_papers()
        per_level = {lv: self.store.count_chunks(lv) for lv in range(0, TOPIC_LEVEL + 1)}
        topics = dict(self.db.rows("SELECT status, COUNT(*) FROM topics GROUP BY status"))
        last = self.db.rows("SELECT report FROM runs ORDER BY started DESC LIMIT 1")
        return TreeStatus(papers=len(papers), with_tree=[p for p in papers if p in trees],
                          without_tree=[p for p in papers if p not in trees],
                          nodes_per_level={k: v for k, v in per_level.items() if v},
                          topics_ok=topics.get("ok", 0), topics_stale=topics.get("stale", 0),
                          last_run=json.loads(last[0][0]) if last else {})

    # --- removal: the paper's own nodes went with it (same arxiv_id); topics using it go stale
    def on_removed(self, arxiv_id: str) -> list[str]:
        """Forget a removed paper's tree; drop the topic summaries that used it and mark them stale
        (they are rebuilt without it on the next build). Returns the stale topic ids."""
        stale = []
        for tid, members in self.db.rows("SELECT id, members FROM topics"):
            if arxiv_id in json.loads(members):
                stale.append(tid)
        self._drop_nodes(stale)
        self.db.many("UPDATE topics SET status='stale', updated_at=? WHERE id=?", [(time.time(), t) for t in stale])
        leftover = [c.id for c in self.store.chunks_of(arxiv_id, level=None) if c.level > 0]
        self._drop_nodes(leftover)
        self.db.run("DELETE FROM trees WHERE arxiv_id=?", (arxiv_id,))
        self.db.run("DELETE FROM plans WHERE arxiv_id=?", (arxiv_id,))
        self.db.run("DELETE FROM nodes WHERE arxiv_id=?", (arxiv_id,))
        return stale

    # --- building
    def build(self, papers: Sequence[str] | None = None, progress: Progress = _quiet,
              topics: bool | None = None) -> BuildReport:
        """Build missing or outdated paper trees (all ok papers, or `papers`), then the topic level."""
        if self.llm is None:
            raise LLMError("building summary trees needs an LLM")
        with build_lock(self.library.settings.index_dir):
            return self._build(papers, progress, topics)

    # --- low level
    def _drop_nodes(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        self.dense.remove(ids)
        for index in self._level_aware_indexes():
            index.remove(ids)
        self.store.remove_chunks(ids)
        self.db.many("DELETE FROM nodes WHERE id=?", [(i,) for i in ids])

    def _level_aware_indexes(self) -> list[Any]:
        """Extra indexes (ColBERT...) get summary nodes only if their search can filter levels,
        so that leaf-only search there stays leaf-only."""
        import inspect

        out = []
        for index in getattr(self.library, "extra_indexes", {}).values():
            try:
                if "levels" in inspect.signature(index.search).parameters:
                    out.append(index)
            except (TypeError, ValueError):
                pass
        return out

    def _vectors(self, chunks: Sequence[Chunk]) -> np.ndarray:
        """Vectors of chunks: summaries from raptor.sqlite, leaves from the dense index (else embedded)."""
        ids = [c.id for c in chunks]
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = self.db.rows(f"SELECT id, vector FROM nodes WHERE id IN ({','.join('?' * len(part))})", part)
            found.update({r[0]: np.frombuffer(r[1], dtype=np.float32) for r in rows if r[1]})
        missing = [i for i in ids if i not in found]
        if missing:
            found.update(_dense_vectors(self.dense, missing))
        still = [c for c in chunks if c.id not in found]
        if still:
            found.update(zip([c.id for c in still], self.embedder.embed([c.text for c in still])))
        return np.stack([np.asarray(found[i], dtype=np.float32) for i in ids])

    def _tokens(self, chunk: Chunk) -> int:
        return chunk.n_tokens or self.embedder.count_tokens(chunk.text)

    def _tokens_of(self, chunks: Sequence[Chunk]) -> int:
        return sum(self._tokens(c) for c in chunks)

    def close(self) -> None:
        self.db.close()


class BuildRunning(RuntimeError):
    """Another process is building trees for this index."""


@contextmanager
def build_lock(index_dir: Path):
    """One tree builder per index: a second one fails at once instead of duplicating LLM work."""
    import fcntl
    import os

    path = index_dir / "raptor.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise BuildRunning(f"another tree build is running on {index_dir} (pid {fh.read().strip() or '?'})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def forget_paper(library, arxiv_id: str) -> list[str]:
    """After a paper's removal: drop its tree bookkeeping and stale its topics (no LLM needed)."""
    if not (library.settings.index_dir / "raptor.sqlite").exists():
        return []
    tree = RaptorTree(library, llm=None, config=TreeConfig())
    try:
        return tree.on_removed(arxiv_id)
    finally:
        tree.close()


def leaves_of(store, chunk_id: str) -> list[Chunk]:
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


def _dense_vectors(dense, ids: Sequence[str]) -> dict[str, np.ndarray]:
    getter = getattr(dense, "vectors", None)
    if callable(getter):
        return dict(getter(ids))
    col = getattr(dense, "_col", None)
    if col is None:
        return {}
    out: dict[str, np.ndarray] = {}
    for i in range(0, len(ids), 500):
        res = col.get(ids=list(ids[i:i + 500]), include=["embeddings"])
        out.update({cid: np.asarray(v, dtype=np.float32) for cid, v in zip(res["ids"], res["embeddings"])})
    return out
