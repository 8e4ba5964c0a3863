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
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from assistant.llm_protocol import LLMError, Message
from assistant.prompts import load_prompt
from assistant.types import Chunk, ProgressEvent
from indexes.clustering import cluster_for_summary, split_to_budget

TOPIC_LEVEL = 9
MAX_TREE_LEVEL = TOPIC_LEVEL - 1
CORPUS_ID = "_corpus"
PROMPT_OVERHEAD_TOKENS = 200  # instructions and headers around the passages in a summary prompt
TOKENIZER_MARGIN = 0.8  # budgets count MiniLM tokens; the LLM's tokenizer may need ~20% more

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


class TreeConfig(BaseModel):
    """How trees are built; `from_settings` fills it from Settings (and the server's context length)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    context_tokens: int = Field(default=2048, description="The LLM's context length")
    summary_tokens: int = Field(default=160, description="Cap on generated tokens per summary")
    concurrency: int = Field(default=4, description="Summaries in flight at once (the server batches them)")
    max_input_tokens: int = Field(default=1500, description="Cap on children tokens per summary prompt, whatever the "
                                  "context: a 0.5B model summarises ~1.5k tokens better than 3k, and prefill stays short")
    reducer: str = Field(default="auto", description="auto (UMAP from 25 points, else PCA) | umap | pca | none")
    seed: int = 0
    topics: bool = Field(default=True, description="Also build the corpus topic level")

    @property
    def input_budget(self) -> int:
        """Embedding-model tokens of children that fit in one summary prompt."""
        room = int((self.context_tokens - self.summary_tokens - PROMPT_OVERHEAD_TOKENS) * TOKENIZER_MARGIN)
        return max(64, min(self.max_input_tokens, room))

    @classmethod
    def from_settings(cls, settings, llm: Any = None, **overrides: Any) -> "TreeConfig":
        values: dict[str, Any] = {
            "summary_tokens": getattr(settings, "raptor_summary_tokens", 160),
            "concurrency": getattr(settings, "raptor_concurrency", 4),
            "context_tokens": getattr(settings, "raptor_context_tokens", None) or server_context(llm)
            or settings.vllm_max_model_len,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def server_context(llm: Any) -> int | None:
    """max_model_len that a vLLM server reports in /v1/models, when the LLM is one."""
    base = getattr(llm, "base_url", None)
    if not base:
        return None
    try:
        import httpx

        data = httpx.get(f"{base}/models", timeout=5.0).json()["data"]
        for card in data:
            if card.get("id") == getattr(llm, "model", None) and card.get("max_model_len"):
                return int(card["max_model_len"])
        return int(data[0]["max_model_len"]) if data and data[0].get("max_model_len") else None
    except Exception:  # an OpenAI-compatible server need not report it: fall back to settings
        return None


class BuildReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    papers_built: list[str] = Field(default_factory=list)
    papers_skipped: list[str] = Field(default_factory=list, description="Tree already current")
    papers_failed: dict[str, str] = Field(default_factory=dict)
    summaries: int = Field(default=0, description="Summaries written by this run")
    reused: int = Field(default=0, description="Summaries found done (checkpoints of a killed run)")
    llm_calls: int = 0
    retries: int = 0
    fallbacks: int = Field(default=0, description="Summaries that fell back to extracts after two bad replies")
    splits: int = Field(default=0, description="Oversized inputs split before summarising")
    topics_written: int = 0
    topics_removed: int = 0
    seconds: float = 0.0
    paper_seconds: dict[str, float] = Field(default_factory=dict)
    llm_seconds: float = 0.0

    @property
    def rate_per_min(self) -> float:
        return 60.0 * self.summaries / self.seconds if self.seconds else 0.0


class TreeStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    papers: int
    with_tree: list[str]
    without_tree: list[str]
    nodes_per_level: dict[int, int]
    topics_ok: int
    topics_stale: int
    last_run: dict[str, Any] = Field(default_factory=dict)


# --- pure helpers (tested with fixed embeddings)

def node_id(arxiv_id: str, level: int, children: Sequence[str]) -> str:
    digest = hashlib.sha1("|".join(children).encode()).hexdigest()[:12]
    return f"{arxiv_id.replace('/', '_')}-L{level}-{digest}"


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


_SENT = re.compile(r"(?<=[.!?])\s+")


def clean_summary(text: str) -> str:
    """Strip labels and repeated sentences (small models loop)."""
    text = re.sub(r"^\s*(\*\*)?(summary|paper summary|topic summary)(\*\*)?\s*:\s*", "", text.strip(), flags=re.I)
    seen: set[str] = set()
    kept = []
    for s in _SENT.split(" ".join(text.split())):
        key = s.lower().strip()
        if key and key not in seen:
            seen.add(key)
            kept.append(s)
    return " ".join(kept).strip()


def cut_to_sentence(text: str) -> str:
    """A reply cut off at the token cap, ended at its last full sentence (or kept whole if it has none)."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[:ends[-1]].strip() if ends and ends[-1] > len(text) // 3 else text.strip()


def cap_reply(text: str, cap_tokens: int) -> str:
    """A runaway reply made usable: cut where it starts repeating itself, then at ~cap tokens, then at
    the last full sentence."""
    words = text.split()
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - 5):
        gram = tuple(w.lower() for w in words[i:i + 6])
        if gram in seen:
            words = words[:i]
            break
        seen.add(gram)
    words = words[:max(10, int(cap_tokens * 0.75))]
    return cut_to_sentence(" ".join(words))


def looks_runaway(text: str) -> bool:
    """Degenerate output: the same few words over and over."""
    words = text.lower().split()
    if len(words) < 40:
        return False
    grams = [" ".join(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(set(grams)) < 0.5 * len(grams)


def split_text(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Sentence-aligned pieces of a text whose token counts fit the budget (no text is dropped)."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for sent in _SENT.split(text):
        t = count(sent)
        if current and used + t > budget:
            pieces.append(" ".join(current))
            current, used = [], 0
        if t > budget:  # one enormous "sentence": cut by words
            words = sent.split()
            step = max(1, int(len(words) * budget / t))
            pieces.extend(" ".join(words[i:i + step]) for i in range(0, len(words), step))
            continue
        current.append(sent)
        used += t
    if current:
        pieces.append(" ".join(current))
    return pieces


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


@dataclass
class _Job:
    """One summary to make: its children, kind and level, and the id it will get."""

    arxiv_id: str
    level: int
    kind: str  # cluster | paper | topic | part
    children: list[Chunk]
    title: str = ""

    @property
    def id(self) -> str:
        return node_id(self.arxiv_id, self.level, [c.id for c in self.children])


class RaptorTree:
    """Builds and maintains the summary trees of a Library. One builder per index at a time."""

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

    def _build(self, papers: Sequence[str] | None, progress: Progress, topics: bool | None) -> BuildReport:
        start = time.perf_counter()
        self._report = report = BuildReport()
        known = {r.paper.arxiv_id: r for r in self.store.papers()}
        for gone in [a for a in self.tree_papers() if a not in known]:
            self.on_removed(gone)
        wanted = [a for a, r in known.items() if r.status.value == "ok"] if papers is None else list(papers)
        todo: list[tuple[str, list[Chunk]]] = []
        for aid in wanted:
            leaves = self.store.chunks_of(aid, 0)
            if not leaves:
                report.papers_failed[aid] = "not in the library (ingest it first)" if aid not in known else "no passages"
            elif self._current(aid, leaves):
                report.papers_skipped.append(aid)
            else:
                todo.append((aid, leaves))
        budget = self.config.input_budget
        self._total = sum(_estimate(leaves, budget, self.config.summary_tokens) for _, leaves in todo) + (max(1, len(known) // 5) if topics is not False else 0)
        self._done = 0
        self._progress = progress
        progress(ProgressEvent(stage="build", message=f"{len(todo)} paper trees to build", done=0, total=self._total))
        for aid, leaves in todo:
            t0 = time.perf_counter()
            try:
                self._build_paper(aid, leaves)
            except LLMError as exc:
                report.papers_failed[aid] = str(exc)
                continue
            report.papers_built.append(aid)
            report.paper_seconds[aid] = round(time.perf_counter() - t0, 2)
        if (self.config.topics if topics is None else topics):
            self._build_topics()
        report.seconds = round(time.perf_counter() - start, 2)
        self.db.run("INSERT INTO runs VALUES (?,?,?,?,?,?)",
                    (time.time(), report.seconds, report.summaries, report.llm_seconds, len(report.papers_built),
                     json.dumps({**report.model_dump(), "rate_per_min": round(report.rate_per_min, 2)})))
        progress(ProgressEvent(stage="build", message="done", done=self._total, total=self._total))
        return report

    def _current(self, aid: str, leaves: Sequence[Chunk]) -> bool:
        rows = self.db.rows("SELECT leaf_hash, root_id FROM trees WHERE arxiv_id=?", (aid,))
        if not rows or rows[0][0] != _hash_ids(c.id for c in leaves):
            return False
        return rows[0][1] in self.store.chunks([rows[0][1]])

    def _build_paper(self, aid: str, leaves: list[Chunk]) -> Chunk:
        leaf_hash = _hash_ids(c.id for c in leaves)
        old = self.db.rows("SELECT leaf_hash FROM trees WHERE arxiv_id=?", (aid,))
        planned = self.db.rows("SELECT input_hash FROM plans WHERE arxiv_id=? AND level=1", (aid,))
        if (old and old[0][0] != leaf_hash) or (planned and planned[0][0] != leaf_hash):
            # Re-ingested with other passages: the old tree describes text that is gone.
            self._drop_nodes([c.id for c in self.store.chunks_of(aid, level=None) if c.level > 0])
            self.db.run("DELETE FROM trees WHERE arxiv_id=?", (aid,))
            self.db.run("DELETE FROM plans WHERE arxiv_id=?", (aid,))
        record = self.store.paper(aid)
        title = record.paper.title if record else aid
        budget = self.config.input_budget
        nodes = leaves
        vectors = self._vectors(nodes)
        level = 0
        n_before = self._report.summaries
        while True:
            tokens = [self._tokens(c) for c in nodes]
            if level > 0 and len(nodes) == 1:
                root = nodes[0]
                break
            if sum(tokens) <= budget or level + 1 >= MAX_TREE_LEVEL:
                [root] = self._run_jobs([_Job(aid, level + 1, "paper", list(nodes), title)])
                break
            clusters = self._plan(aid, level + 1, nodes, vectors, tokens)
            jobs = [_Job(aid, level + 1, "cluster", [nodes[i] for i in cl], title) for cl in clusters]
            nodes = self._run_jobs(jobs)
            vectors = self._vectors(nodes)
            level += 1
        self.db.run("INSERT OR REPLACE INTO trees VALUES (?,?,?,?,?,?,?)",
                    (aid, leaf_hash, root.id, root.level, self._report.summaries - n_before,
                     self._report.paper_seconds.get(aid, 0.0), time.time()))
        return root

    def _plan(self, aid: str, level: int, nodes: Sequence[Chunk], vectors: np.ndarray,
              tokens: Sequence[int]) -> list[list[int]]:
        """The layer's clusters, saved before any of them is summarised so a resumed build reuses them."""
        input_hash = _hash_ids(c.id for c in nodes)
        rows = self.db.rows("SELECT input_hash, clusters FROM plans WHERE arxiv_id=? AND level=?", (aid, level))
        if rows and rows[0][0] == input_hash:
            return json.loads(rows[0][1])
        clusters = cluster_for_summary(vectors, tokens, self.config.input_budget, reducer=self.config.reducer,
                                       seed=self.config.seed)
        self.db.run("INSERT OR REPLACE INTO plans VALUES (?,?,?,?)", (aid, level, input_hash, json.dumps(clusters)))
        return clusters

    # --- summarising: LLM calls in threads, embedding and writes in this thread as each finishes
    def _run_jobs(self, jobs: list[_Job]) -> list[Chunk]:
        """Summaries for the jobs, in job order; done ones are read back, the rest made concurrently."""
        existing = self.store.chunks([j.id for j in jobs])
        results: dict[str, Chunk] = {}
        pending = []
        for job in jobs:
            if job.id in existing:
                results[job.id] = existing[job.id]
                self._report.reused += 1
                self._tick(job)
            elif self._tokens_of(job.children) > self.config.input_budget:
                results[job.id] = self._run_oversized(job)
            else:
                pending.append(job)
        if pending:
            with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
                futures = {pool.submit(self._summarise, job): job for job in pending}
                for fut in as_completed(futures):
                    job = futures[fut]
                    text, note = fut.result()
                    results[job.id] = self._write(job, text, note)
        return [results[j.id] for j in jobs]

    def _run_oversized(self, job: _Job) -> Chunk:
        """Inputs too large for one prompt (a cluster that could not be split finer, one huge passage):
        summarise budget-sized parts, then summarise the parts. Nothing is truncated."""
        self._report.splits += 1
        budget = self.config.input_budget
        if len(job.children) > 1:
            tokens = [self._tokens(c) for c in job.children]
            groups = split_to_budget(range(len(job.children)), tokens, self._vectors(job.children), budget)
            parts = [_Job(job.arxiv_id, job.level, "part", [job.children[i] for i in g], job.title) for g in groups]
        else:
            child = job.children[0]
            pieces = split_text(child.text, budget, self.embedder.count_tokens)
            pseudo = [child.model_copy(update={"id": f"{child.id}#p{i}", "text": t}) for i, t in enumerate(pieces)]
            parts = [_Job(job.arxiv_id, job.level, "part", [p], job.title) for p in pseudo]
        summaries = [self._summarise(part)[0] for part in parts]
        # The node keeps its real children; its text summarises the parts' summaries.
        pseudo = [job.children[0].model_copy(update={"id": f"{job.id}#s{i}", "text": s, "level": job.level,
                                                      "n_tokens": self.embedder.count_tokens(s)})
                  for i, s in enumerate(summaries)]
        merged = _Job(job.arxiv_id, job.level, job.kind, pseudo, job.title)
        if self._tokens_of(pseudo) > budget:
            text, note = " ".join(summaries), f"split into {len(parts)} parts; parts' summaries joined"
        else:
            text, note = self._summarise(merged)
            note = f"split into {len(parts)} parts" + (f"; {note}" if note else "")
        return self._write(job, text, note)

    def _summarise(self, job: _Job) -> tuple[str, str]:
        """(summary text, note). Empty or runaway replies are retried once, then capped or replaced by extracts."""
        messages = self._messages(job)
        cap = self.config.summary_tokens
        notes = []
        for attempt in range(2):
            temperature = 0.0 if attempt == 0 else 0.3
            text, finish = self._call(messages, cap, temperature)
            cleaned = clean_summary(text)
            runaway = looks_runaway(text)
            if cleaned and not runaway:
                if finish == "length":  # long-winded but sane: keep it, ended at its last full sentence
                    return cut_to_sentence(cleaned), "; ".join(notes + ["cut at the token cap"])
                return cleaned, "; ".join(notes)
            if attempt == 0:
                with self._lock:
                    self._report.retries += 1
                notes.append("retried: " + ("empty reply" if not cleaned else "reply repeated itself"))
                continue
            if cleaned:
                return cap_reply(cleaned, cap), "; ".join(notes + ["capped at the token limit"])
        with self._lock:
            self._report.fallbacks += 1
        return _extract(job.children, cap, self.embedder.count_tokens), "; ".join(notes + ["extractive fallback"])

    def _call(self, messages: list[Message], max_tokens: int, temperature: float) -> tuple[str, str | None]:
        t0 = time.perf_counter()
        with self._lock:
            self._report.llm_calls += 1
        try:
            if hasattr(self.llm, "chat"):
                c = self.llm.chat(messages, max_tokens=max_tokens, temperature=temperature)
                return c.text, c.finish_reason
            return self.llm.complete(messages, max_tokens=max_tokens, temperature=temperature), None
        except LLMError as exc:
            if "empty reply" in str(exc):
                return "", None
            raise
        finally:
            with self._lock:
                self._report.llm_seconds += time.perf_counter() - t0

    def _messages(self, job: _Job) -> list[Message]:
        words = max(20, int(self.config.summary_tokens * 0.45))  # small models overshoot word limits
        if job.kind == "topic":
            body = "\n\n".join(f"[{i}] {c.section.removeprefix('Paper summary: ')}:\n{c.text.strip()}"
                               for i, c in enumerate(job.children, 1))
            prompt = load_prompt("topic_summary", self.prompts_dir).render(summaries=body, words=words)
        elif job.kind == "paper":
            body = "\n\n".join(_child_block(i, c) for i, c in enumerate(job.children, 1))
            prompt = load_prompt("paper_summary", self.prompts_dir).render(title=job.title, summaries=body, words=words)
        else:
            body = "\n\n".join(_child_block(i, c) for i, c in enumerate(job.children, 1))
            prompt = load_prompt("cluster_summary", self.prompts_dir).render(title=job.title, passages=body, words=words)
        return [{"role": "user", "content": prompt}]

    def _write(self, job: _Job, text: str, note: str) -> Chunk:
        node = _make_node(job, text, self.embedder.count_tokens(text))
        vector = self.embedder.embed([text])
        self.dense.add_embedded([node], vector)
        for index in self._level_aware_indexes():
            index.add([node])
        self.store.add_chunks([node])  # the checkpoint: a node in the store is done
        self.db.run("INSERT OR REPLACE INTO nodes VALUES (?,?,?,?,?,?)",
                    (node.id, node.arxiv_id, node.level, job.kind, vector[0].astype(np.float32).tobytes(), note))
        self._report.summaries += 1
        self._tick(job)
        return node

    def _tick(self, job: _Job) -> None:
        self._done += 1
        self._total = max(self._total, self._done)
        self._progress(ProgressEvent(stage="build", message=f"{job.kind} summary, level {job.level}",
                                     done=self._done, total=self._total, item=job.arxiv_id))

    # --- the corpus level
    def _build_topics(self) -> None:
        trees = self.tree_papers()
        roots = self.store.chunks(list(trees.values()))
        trees = {a: r for a, r in trees.items() if r in roots}
        existing = {tid: json.loads(m) for tid, m in self.db.rows("SELECT id, members FROM topics")}
        if len(trees) < 2:
            self._replace_topics(existing, [])
            return
        aids = sorted(trees)
        vectors = self._vectors([roots[trees[a]] for a in aids])
        tokens = [self._tokens(roots[trees[a]]) for a in aids]
        budget = self.config.input_budget
        kept = [[a for a in members if a in trees] for members in existing.values()]
        kept = [m for m in kept if m]
        assigned = {a for m in kept for a in m}
        new = [a for a in aids if a not in assigned]
        if not kept or len(new) > max(2, len(aids) // 2):
            clusters = cluster_for_summary(vectors, tokens, budget, reducer=self.config.reducer, seed=self.config.seed)
            groups = [[aids[i] for i in c] for c in clusters]
        else:
            groups = [list(m) for m in kept]
            index = {a: i for i, a in enumerate(aids)}
            centroids = np.stack([vectors[[index[a] for a in g]].mean(axis=0) for g in groups])
            centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
            for a in new:
                sims = centroids @ vectors[index[a]]
                best = float(sims.max())
                for gi in np.flatnonzero(sims >= best - 0.02)[:2]:  # soft: near-ties join both
                    groups[int(gi)].append(a)
            split: list[list[str]] = []
            for g in groups:
                idx = [index[a] for a in g]
                split.extend([[aids[idx[i]] for i in part] for part in
                              split_to_budget(range(len(idx)), [tokens[i] for i in idx], vectors[idx], budget)])
            groups = split
        groups = _merge_singletons([sorted(set(g)) for g in groups], {a: vectors[i] for i, a in enumerate(aids)})
        self._replace_topics(existing, groups, trees, roots)

    def _replace_topics(self, existing: dict[str, list[str]], groups: list[list[str]],
                        trees: Mapping[str, str] | None = None, roots: Mapping[str, Chunk] | None = None) -> None:
        jobs = []
        for g in groups:
            children = [roots[trees[a]] for a in g]
            jobs.append(_Job(CORPUS_ID, TOPIC_LEVEL, "topic", children))
        nodes = self._run_jobs(jobs) if jobs else []
        keep = {n.id for n in nodes}
        gone = [tid for tid in existing if tid not in keep]
        self._drop_nodes(gone)
        self.db.many("DELETE FROM topics WHERE id=?", [(t,) for t in gone])
        self.db.many("INSERT OR REPLACE INTO topics VALUES (?,?,'ok',?)",
                     [(n.id, json.dumps(g), time.time()) for n, g in zip(nodes, groups)])
        self._report.topics_removed += len(gone)
        self._report.topics_written += len([n for n in nodes if n.id not in existing])

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


def _merge_singletons(groups: list[list[str]], vectors: Mapping[str, np.ndarray]) -> list[list[str]]:
    """A topic of one paper says nothing its paper summary does not: join it to the nearest topic."""
    groups = [g for g in groups if g]
    while len(groups) > 1 and any(len(g) == 1 for g in groups):
        lone = next(i for i, g in enumerate(groups) if len(g) == 1)
        v = vectors[groups[lone][0]]
        others = [i for i in range(len(groups)) if i != lone]
        best = max(others, key=lambda i: float(np.mean([vectors[a] for a in groups[i]], axis=0) @ v))
        groups[best] = sorted(groups[best] + groups[lone])
        del groups[lone]
    return groups


def _hash_ids(ids: Iterable[str]) -> str:
    return hashlib.sha1("|".join(ids).encode()).hexdigest()


def _estimate(leaves: Sequence[Chunk], budget: int, summary_tokens: int = 160) -> int:
    """Rough count of summaries a paper's tree needs (for the ETA)."""
    tokens = sum(c.n_tokens or 200 for c in leaves)
    n, total = max(1, math.ceil(tokens / (0.8 * budget))), 0
    shrink = min(0.5, summary_tokens / (0.8 * budget))
    while n > 1 and total < 100_000:
        total += n
        n = math.ceil(n * shrink)
    return total + 1


def _child_block(i: int, c: Chunk) -> str:
    where = f"{c.section or 'text'}, {c.pages_label}" if c.level == 0 else f"{c.pages_label}"
    return f"[{i}] ({where})\n{c.text.strip()}"


def _extract(children: Sequence[Chunk], cap: int, count: Callable[[str], int]) -> str:
    """First sentences of the children up to the cap: a faithful stand-in when the model fails twice."""
    out, used = [], 0
    for c in children:
        first = _SENT.split(" ".join(c.text.split()))[0]
        t = count(first)
        if out and used + t > cap:
            break
        out.append(first)
        used += t
    return " ".join(out)


def _make_node(job: _Job, text: str, n_tokens: int) -> Chunk:
    kids = job.children
    real = [c for c in kids if "#" not in c.id] or kids
    if job.kind == "topic":
        titles = [c.section.removeprefix("Paper summary: ") for c in kids]
        section = "Topic: " + "; ".join(t[:40] for t in titles)
        pages = (0, 0)
        chars = (0, 0)
    else:
        sections = list(dict.fromkeys(s for c in kids for s in _sections(c)))
        label = "Paper summary" if job.kind == "paper" else f"Summary (level {job.level})"
        section = f"{label}: {job.title}" if job.kind == "paper" else f"{label}: {'; '.join(sections)}"
        pages = (min(c.page_start for c in kids), max(c.page_end for c in kids))
        chars = (min(c.char_start for c in kids), max(c.char_end for c in kids))
    return Chunk(id=job.id, arxiv_id=job.arxiv_id, version=kids[0].version if job.kind != "topic" else None,
                 section=section[:300], page_start=pages[0], page_end=pages[1], char_start=chars[0],
                 char_end=chars[1], text=text, n_tokens=n_tokens, level=job.level,
                 children=tuple(c.id for c in real))


def _sections(c: Chunk) -> list[str]:
    if c.level == 0:
        return [c.section] if c.section else []
    if ": " in c.section:
        return [s for s in c.section.split(": ", 1)[1].split("; ") if s]
    return []
