"""The RAPTOR summary-tree builder, the part that needs the LLM: per-paper layers of cluster summaries up to a
paper summary, the corpus topic level over paper summaries, and the concurrent, checkpointed LLM jobs that make
each summary. How layers are clustered, what a node is and where trees are kept is indexes/raptor/ (no LLM).
Resumable: plans and finished nodes are saved (indexes.raptor.TreeStore) as they are made."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from foundation.prompts import load_prompt
from foundation.types import Chunk, ProgressEvent
from assistant.llm.protocol import LLM, LLMError, Message
from assistant.summaries.config import BuildReport, Progress, TreeConfig
from assistant.summaries.text import (cap_reply, clean_summary, cut_to_sentence, extractive_summary, looks_runaway,
                                      split_text)
from indexes.raptor.clustering import cluster_for_summary, estimate_summaries, split_to_budget, topic_groups
from indexes.raptor.nodes import CORPUS_ID, MAX_TREE_LEVEL, TOPIC_LEVEL, NodeKind, hash_ids, node_id, summary_node
from indexes.raptor.store import TreeLibrary, TreeStore, build_lock


@dataclass
class _Job:
    """One summary to make: its children, kind and level, and the id it will get."""

    arxiv_id: str
    level: int
    kind: NodeKind
    children: list[Chunk]
    title: str = ""

    @property
    def id(self) -> str:
        return node_id(self.arxiv_id, self.level, [c.id for c in self.children])


def _quiet(_: ProgressEvent) -> None:
    pass


class TreeBuilder:
    """Builds the summary trees of a library with an LLM. One builder per index at a time (build_lock)."""

    def __init__(self, library: TreeLibrary, llm: LLM, config: TreeConfig):
        self.library = library
        self.store = library.store
        self.embedder = library.embedder
        self.llm = llm
        self.config = config
        self.prompts_dir = library.settings.prompts_dir
        self.trees = TreeStore(library)
        self._report = BuildReport()
        self._lock = threading.Lock()

    def build(self, papers: Sequence[str] | None = None, progress: Progress = _quiet,
              topics: bool | None = None) -> BuildReport:
        """Build missing or outdated paper trees (all ok papers, or `papers`), then the topic level."""
        if self.llm is None:
            raise LLMError("building summary trees needs an LLM")
        with build_lock(self.library.settings.index_dir):
            return self._build(papers, progress, topics)

    def close(self) -> None:
        self.trees.close()

    def _tokens(self, chunk: Chunk) -> int:
        return chunk.n_tokens or self.embedder.count_tokens(chunk.text)

    def _tokens_of(self, chunks: Sequence[Chunk]) -> int:
        return sum(self._tokens(c) for c in chunks)

    def _build(self, papers: Sequence[str] | None, progress: Progress, topics: bool | None) -> BuildReport:
        start = time.perf_counter()
        self._report = report = BuildReport()
        known = {r.paper.arxiv_id: r for r in self.store.papers()}
        for gone in [a for a in self.trees.tree_papers() if a not in known]:
            self.trees.on_removed(gone)
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
        self._total = (sum(estimate_summaries([c.n_tokens for c in leaves], budget, self.config.summary_tokens)
                           for _, leaves in todo) + (max(1, len(known) // 5) if topics is not False else 0))
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
        self.trees.record_run(report.seconds, report.summaries, report.llm_seconds, len(report.papers_built),
                              {**report.model_dump(), "rate_per_min": round(report.rate_per_min, 2)})
        progress(ProgressEvent(stage="build", message="done", done=self._total, total=self._total))
        return report

    def _current(self, aid: str, leaves: Sequence[Chunk]) -> bool:
        tree = self.trees.tree_of(aid)
        if tree is None or tree[0] != hash_ids(c.id for c in leaves):
            return False
        return tree[1] in self.store.chunks([tree[1]])

    def _build_paper(self, aid: str, leaves: list[Chunk]) -> Chunk:
        leaf_hash = hash_ids(c.id for c in leaves)
        old = self.trees.tree_of(aid)
        planned = self.trees.plan_hash(aid, 1)
        if (old and old[0] != leaf_hash) or (planned and planned != leaf_hash):
            self.trees.forget_tree(aid)  # re-ingested with other passages: the old tree describes text that is gone
        record = self.store.paper(aid)
        title = record.paper.title if record else aid
        budget = self.config.input_budget
        nodes = leaves
        vectors = self.trees.vectors(nodes)
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
            vectors = self.trees.vectors(nodes)
            level += 1
        self.trees.save_tree(aid, leaf_hash, root, self._report.summaries - n_before,
                             self._report.paper_seconds.get(aid, 0.0))
        return root

    def _plan(self, aid: str, level: int, nodes: Sequence[Chunk], vectors: np.ndarray,
              tokens: Sequence[int]) -> list[list[int]]:
        """The layer's clusters, saved before any of them is summarised so a resumed build reuses them."""
        input_hash = hash_ids(c.id for c in nodes)
        saved = self.trees.plan(aid, level, input_hash)
        if saved is not None:
            return saved
        clusters = cluster_for_summary(vectors, tokens, self.config.input_budget, reducer=self.config.reducer,
                                       seed=self.config.seed)
        self.trees.save_plan(aid, level, input_hash, clusters)
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
            groups = split_to_budget(range(len(job.children)), tokens, self.trees.vectors(job.children), budget)
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
        return extractive_summary(job.children, cap, self.embedder.count_tokens), "; ".join(notes + ["extractive fallback"])

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
        node = summary_node(job.arxiv_id, job.level, job.kind, job.children, job.title, text,
                            self.embedder.count_tokens(text))
        self.trees.add_node(node, self.embedder.embed([text])[0], job.kind, note)
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
        trees = self.trees.tree_papers()
        roots = self.store.chunks(list(trees.values()))
        trees = {a: r for a, r in trees.items() if r in roots}
        existing = self.trees.topics()
        if len(trees) < 2:
            self._replace_topics(existing, [])
            return
        aids = sorted(trees)
        vectors = self.trees.vectors([roots[trees[a]] for a in aids])
        tokens = [self._tokens(roots[trees[a]]) for a in aids]
        kept = [[a for a in members if a in trees] for members in existing.values()]
        groups = topic_groups(aids, vectors, tokens, [m for m in kept if m], self.config.input_budget,
                              reducer=self.config.reducer, seed=self.config.seed)
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
        self.trees.replace_topics(gone, list(zip(nodes, groups)))
        self._report.topics_removed += len(gone)
        self._report.topics_written += len([n for n in nodes if n.id not in existing])


def _child_block(i: int, c: Chunk) -> str:
    where = f"{c.section or 'text'}, {c.pages_label}" if c.level == 0 else f"{c.pages_label}"
    return f"[{i}] ({where})\n{c.text.strip()}"
