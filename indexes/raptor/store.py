"""Storage of RAPTOR summary trees (Sarthi et al. 2024). Summary nodes live in the SQLite store and the
dense index like leaves (never in BM25 or ColBERT, whose search is leaf-only), so collapsed retrieval can mix
levels and a citation of a summary resolves to its leaf passages and their pages. Bookkeeping lives beside the
index in `raptor.sqlite`:

- trees:  per paper, the hash of the leaves the tree was built from and its root (incremental).
- plans:  the clusters chosen for each layer, saved before summarising it (resume: same plan, same ids).
- nodes:  kind, vector and notes (retried, capped, split, extractive fallback) of every summary.
- topics: corpus clusters (member papers) and their status; `stale` after a member paper is removed.
- runs:   build reports, for the build rate in `raptor status`.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foundation.config import Settings
from foundation.locks import LockHeld, exclusive_lock, lock_holder
from foundation.types import Chunk
from indexes.base import Embedder
from indexes.dense import DenseIndex
from indexes.raptor.nodes import TOPIC_LEVEL
from indexes.store import Store


class TreeLibrary(Protocol):
    """What summary trees need of a library (indexes.library.Library has it): its settings (index folder,
    collapsed budget), the embedder, the store that holds every node, and the dense index that searches them."""

    settings: Settings
    embedder: Embedder
    store: Store
    dense: DenseIndex


class TreeStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    papers: int
    with_tree: list[str]
    without_tree: list[str]
    nodes_per_level: dict[int, int]
    topics_ok: int
    topics_stale: int
    last_run: dict[str, Any] = Field(default_factory=dict)



class TreeStore:
    """The summary trees of a library: nodes in the store and dense index, bookkeeping in raptor.sqlite."""

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

    def __init__(self, library: TreeLibrary):
        self.library = library
        self.store = library.store
        self.dense = library.dense
        self.path = library.settings.index_dir / "raptor.sqlite"
        self.db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(self.SCHEMA)
        self._lock = threading.Lock()

    # --- SQL, serialised: builder threads share one connection
    def _run(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._lock:
            self.db.execute(sql, args)
            self.db.commit()

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            self.db.executemany(sql, list(rows))
            self.db.commit()

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    # --- trees
    def tree_papers(self) -> dict[str, str]:
        """arxiv_id -> root id, for papers whose tree is complete."""
        return {a: r for a, r in self._rows("SELECT arxiv_id, root_id FROM trees")}

    def tree_of(self, arxiv_id: str) -> tuple[str, str] | None:
        """(leaf hash, root id) of a paper's finished tree."""
        rows = self._rows("SELECT leaf_hash, root_id FROM trees WHERE arxiv_id=?", (arxiv_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def save_tree(self, arxiv_id: str, leaf_hash: str, root: Chunk, n_summaries: int, seconds: float) -> None:
        self._run("INSERT OR REPLACE INTO trees VALUES (?,?,?,?,?,?,?)",
                  (arxiv_id, leaf_hash, root.id, root.level, n_summaries, seconds, time.time()))

    def root_of(self, arxiv_id: str) -> Chunk | None:
        tree = self.tree_of(arxiv_id)
        return self.store.chunks([tree[1]]).get(tree[1]) if tree else None

    def layers_of(self, arxiv_id: str) -> list[list[Chunk]]:
        """The paper's summary layers, top (paper summary) first."""
        by_level: dict[int, list[Chunk]] = {}
        for c in self.store.chunks_of(arxiv_id, level=None):
            if c.level > 0:
                by_level.setdefault(c.level, []).append(c)
        return [by_level[lv] for lv in sorted(by_level, reverse=True)]

    def forget_tree(self, arxiv_id: str) -> None:
        """Drop a paper's summaries, tree and plans (its leaves changed, or it was removed)."""
        self.drop_nodes([c.id for c in self.store.chunks_of(arxiv_id, level=None) if c.level > 0])
        self._run("DELETE FROM trees WHERE arxiv_id=?", (arxiv_id,))
        self._run("DELETE FROM plans WHERE arxiv_id=?", (arxiv_id,))

    # --- layer plans (a resumed build reuses them, so summary ids come out the same)
    def plan(self, arxiv_id: str, level: int, input_hash: str) -> list[list[int]] | None:
        rows = self._rows("SELECT input_hash, clusters FROM plans WHERE arxiv_id=? AND level=?", (arxiv_id, level))
        return json.loads(rows[0][1]) if rows and rows[0][0] == input_hash else None

    def plan_hash(self, arxiv_id: str, level: int) -> str | None:
        rows = self._rows("SELECT input_hash FROM plans WHERE arxiv_id=? AND level=?", (arxiv_id, level))
        return rows[0][0] if rows else None

    def save_plan(self, arxiv_id: str, level: int, input_hash: str, clusters: list[list[int]]) -> None:
        self._run("INSERT OR REPLACE INTO plans VALUES (?,?,?,?)", (arxiv_id, level, input_hash, json.dumps(clusters)))

    # --- nodes
    def add_node(self, node: Chunk, vector: np.ndarray, kind: str, note: str) -> None:
        """Write a summary: dense index first, then the store (the checkpoint: a node in the store is done)."""
        self.dense.add_embedded([node], np.asarray(vector, dtype=np.float32).reshape(1, -1))
        self.store.add_chunks([node])
        self._run("INSERT OR REPLACE INTO nodes VALUES (?,?,?,?,?,?)",
                  (node.id, node.arxiv_id, node.level, kind, np.asarray(vector, dtype=np.float32).tobytes(), note))

    def drop_nodes(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        self.dense.remove(ids)
        self.store.remove_chunks(ids)
        self._many("DELETE FROM nodes WHERE id=?", [(i,) for i in ids])

    def vectors(self, chunks: Sequence[Chunk]) -> np.ndarray:
        """Vectors of chunks: summaries from raptor.sqlite, leaves from the dense index (else embedded)."""
        ids = [c.id for c in chunks]
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = self._rows(f"SELECT id, vector FROM nodes WHERE id IN ({','.join('?' * len(part))})", part)
            found.update({r[0]: np.frombuffer(r[1], dtype=np.float32) for r in rows if r[1]})
        missing = [i for i in ids if i not in found]
        if missing:
            found.update(self.dense.vectors(missing))
        still = [c for c in chunks if c.id not in found]
        if still:
            found.update(zip([c.id for c in still], self.library.embedder.embed([c.text for c in still])))
        return np.stack([np.asarray(found[i], dtype=np.float32) for i in ids])

    # --- topics
    def topics(self) -> dict[str, list[str]]:
        return {tid: json.loads(m) for tid, m in self._rows("SELECT id, members FROM topics")}

    def replace_topics(self, gone: Sequence[str], written: Sequence[tuple[Chunk, list[str]]]) -> None:
        self.drop_nodes(gone)
        self._many("DELETE FROM topics WHERE id=?", [(t,) for t in gone])
        self._many("INSERT OR REPLACE INTO topics VALUES (?,?,'ok',?)",
                   [(n.id, json.dumps(g), time.time()) for n, g in written])

    # --- runs and status
    def record_run(self, seconds: float, summaries: int, llm_seconds: float, papers: int, report: dict) -> None:
        self._run("INSERT INTO runs VALUES (?,?,?,?,?,?)",
                  (time.time(), seconds, summaries, llm_seconds, papers, json.dumps(report)))

    def status(self) -> TreeStatus:
        papers = [r.paper.arxiv_id for r in self.store.papers() if r.status.value == "ok"]
        trees = self.tree_papers()
        per_level = {lv: self.store.count_chunks(lv) for lv in range(0, TOPIC_LEVEL + 1)}
        topics = dict(self._rows("SELECT status, COUNT(*) FROM topics GROUP BY status"))
        last = self._rows("SELECT report FROM runs ORDER BY started DESC LIMIT 1")
        return TreeStatus(papers=len(papers), with_tree=[p for p in papers if p in trees],
                          without_tree=[p for p in papers if p not in trees],
                          nodes_per_level={k: v for k, v in per_level.items() if v},
                          topics_ok=topics.get("ok", 0), topics_stale=topics.get("stale", 0),
                          last_run=json.loads(last[0][0]) if last else {})

    # --- removal: the paper's own nodes go; topics using it go stale
    def on_removed(self, arxiv_id: str) -> list[str]:
        """Forget a removed paper's tree; drop the topic summaries that used it and mark them stale
        (they are rebuilt without it on the next build). Returns the stale topic ids."""
        stale = [tid for tid, members in self.topics().items() if arxiv_id in members]
        self.drop_nodes(stale)
        self._many("UPDATE topics SET status='stale', updated_at=? WHERE id=?", [(time.time(), t) for t in stale])
        self.forget_tree(arxiv_id)
        self._run("DELETE FROM nodes WHERE arxiv_id=?", (arxiv_id,))
        return stale

    def close(self) -> None:
        self.db.close()


class BuildRunning(RuntimeError):
    """Another process is building trees for this index."""


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One tree builder per index: a second one fails at once instead of duplicating LLM work."""
    try:
        lock = exclusive_lock(index_dir / "raptor.lock", blocking=False)
        lock.__enter__()
    except LockHeld as exc:
        raise BuildRunning(f"another tree build is running on {index_dir} (pid {exc.pid or '?'})") from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def build_running(index_dir: Path) -> int | None:
    """Pid of the process building trees for this index, if any."""
    return lock_holder(index_dir / "raptor.lock")


def forget_paper(library: TreeLibrary, arxiv_id: str) -> list[str]:
    """After a paper's removal: drop its tree bookkeeping and stale its topics (no LLM needed)."""
    if not (library.settings.index_dir / "raptor.sqlite").exists():
        return []
    trees = TreeStore(library)
    try:
        return trees.on_removed(arxiv_id)
    finally:
        trees.close()
