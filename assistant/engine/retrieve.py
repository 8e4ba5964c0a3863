"""Retrieval over the library: one call for every mode (dense, bm25, colbert, hybrid, collapsed), typed Hits out.

`retrieve` is the answer path's one retrieval per question: the passages and, from the same index calls, the
scores the answerability gate reads (the best dense cosine and the best BM25 score). Each index is searched at
most once per question.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from assistant.engine.fusion import rrf
from indexes.base import Reranker
from indexes.health import quick_check, unavailable
from indexes.library import Library
from indexes.raptor import collapsed_search, parse_levels
from foundation.types import Hit


@dataclass(frozen=True)
class Retrieval:
    """Passages best first, and the retrieval scores the gate reads beside them."""
    query: str
    hits: tuple[Hit, ...]
    relevance: float        # best dense cosine: a scale comparable across questions, whatever the mode
    bm25_top: float = 0.0   # best BM25 score (0 when the library keeps no BM25 index)


class RetrievalError(ValueError):
    pass


def valid_text(text: str) -> str:
    """Invalid UTF-8 from the command line arrives as lone surrogates, which the tokenizers reject with a
    TypeError: replace them, as a bad byte in a query should not cost the whole search."""
    return text.encode("utf-8", "replace").decode("utf-8")


class Retriever:
    def __init__(self, library: Library):
        self.library = library

    def modes(self) -> list[str]:
        return ["dense", *self.library.extra_indexes.keys(), *(["hybrid"] if self.library.extra_indexes else []),
                "collapsed"]

    def warnings(self, mode: str) -> list[str]:
        """What is wrong with the indexes `mode` searches (missing, stale, mid-build), in words for the user;
        hybrid says which retrievers it runs without."""
        used = self._indexes_of(mode)
        issues = [i for i in quick_check(self.library) if i.index in used or i.kind == "pending"]
        out = [i.message for i in issues]
        if mode == "hybrid":
            down = sorted({i.index for i in issues if i.unavailable})
            if down:
                out.append(f"hybrid search degraded: running without {', '.join(down)}")
        return out

    def unavailable(self, mode: str) -> list[str]:
        """Messages of the secondary indexes `mode` needs that cannot serve a search at all."""
        used = self._indexes_of(mode)
        found = (unavailable(self.library, name) for name in self.library.extra_indexes if name in used)
        return [message for message in found if message]

    def _keep_searchable(self, ranked: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
        """Drop ids search must not return (a paper mid-ingest, a superseded version, a removed paper)
        before fusion and truncation, so that they cannot crowd out the passages that are searchable."""
        keep = self._searchable_ids([cid for cid, _ in ranked])
        return [(cid, s) for cid, s in ranked if cid in keep]

    def _searchable_ids(self, ids: Sequence[str]) -> set[str]:
        chunks = self.library.store.chunks(list(dict.fromkeys(ids)))
        ok = self.library.ok_papers()
        return {cid for cid, chunk in chunks.items() if self.library.searchable(chunk, ok)}

    def _indexes_of(self, mode: str) -> set[str]:
        if mode == "hybrid":
            return {"dense", *self.library.extra_indexes}
        return {mode} if mode in self.library.extra_indexes else {"dense"}

    def rank(self, query: str, mode: str, k: int, papers: Sequence[str] | None = None,
             extra_vectors: Sequence[np.ndarray] = (), tops: dict[str, float] | None = None) -> list[tuple[str, float]]:
        """(chunk id, score) best first. extra_vectors (e.g. HyDE passages) are searched densely and fused in.
        tops, when given, receives each searched index's best raw score by index name."""
        lib = self.library
        tops = {} if tops is None else tops

        def searched(name: str, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
            if ranked:
                tops[name] = max(tops.get(name, float("-inf")), float(ranked[0][1]))
            return ranked

        if mode == "dense":
            ranked = self._keep_searchable(searched("dense", lib.dense.search(query, 2 * k, papers)))
        elif mode in lib.extra_indexes:
            down = self.unavailable(mode)
            if down:  # an empty result would read as "nothing matches"
                raise RetrievalError(down[0])
            ranked = self._keep_searchable(searched(mode, lib.extra_indexes[mode].search(query, 2 * k, papers)))
        elif mode == "hybrid":
            pool = max(k * 3, 30)
            rerankers = {name: index for name, index in lib.extra_indexes.items()
                         if name in lib.settings.hybrid_rerank and isinstance(index, Reranker)}
            rankings = {"dense": searched("dense", lib.dense.search(query, pool, papers))}
            rankings.update({name: searched(name, index.search(query, pool, papers))
                             for name, index in lib.extra_indexes.items() if name not in rerankers})
            depth = lib.settings.hybrid_rerank_depth
            candidates = list(dict.fromkeys(cid for r in rankings.values() for cid, _ in r[:depth]))
            for name, index in rerankers.items():  # with no candidates (the others down), search as usual
                rankings[name] = index.rerank(query, candidates) if candidates else index.search(query, pool, papers)
            keep = self._searchable_ids([cid for r in rankings.values() for cid, _ in r])  # one store read for all
            rankings = {name: [(cid, s) for cid, s in r if cid in keep] for name, r in rankings.items()}
            ranked = rrf(rankings, lib.settings.fusion_weights, k=lib.settings.rrf_k, limit=k)
        elif mode == "collapsed" or mode.startswith("collapsed:"):
            # RAPTOR collapsed tree: every level in one pool, filled to a token budget; "collapsed:0,1" filters levels.
            ranked = collapsed_search(lib, query, k, papers, levels=parse_levels(mode))
        else:
            raise RetrievalError(f"unknown retrieval mode {mode!r}; available: {', '.join(self.modes())}")
        if extra_vectors:
            rankings = {"query": ranked}
            for i, vec in enumerate(extra_vectors):
                rankings[f"hyde{i}"] = lib.dense.search_vector(vec, k, papers)
            ranked = rrf(rankings, {name: 1.0 for name in rankings}, limit=k)
        return ranked[:k]

    def relevance(self, query: str, papers: Sequence[str] | None = None) -> float:
        """Best dense cosine: a scale comparable across questions, whatever the retrieval mode."""
        top = self.library.dense.search(valid_text(query), 1, papers or None)
        return float(top[0][1]) if top else 0.0

    def retrieve(self, query: str, mode: str = "dense", k: int = 10, papers: Sequence[str] | None = None,
                 extra_vectors: Sequence[np.ndarray] = ()) -> Retrieval:
        """The passages for a question and the gate's scores, each index searched once: modes that search
        neither dense nor BM25 themselves (colbert, collapsed) add a one-result search of what they lack."""
        query = self._clean(query)
        papers = papers or None
        tops: dict[str, float] = {}
        hits = self.to_hits(self.rank(query, mode, k, papers, extra_vectors, tops), mode)
        if "dense" not in tops:
            top = self.library.dense.search(query, 1, papers)
            tops["dense"] = float(top[0][1]) if top else 0.0
        bm25 = self.library.extra_indexes.get("bm25")
        if "bm25" not in tops and bm25 is not None and not self.unavailable("bm25"):
            top = bm25.search(query, 1, papers)
            tops["bm25"] = float(top[0][1]) if top else 0.0
        return Retrieval(query, tuple(hits), relevance=tops.get("dense", 0.0), bm25_top=tops.get("bm25", 0.0))

    @staticmethod
    def _clean(query: str) -> str:
        query = valid_text(query).strip()
        if not query:
            raise RetrievalError("empty query")
        return query

    def search(self, query: str, mode: str = "dense", k: int = 10, papers: Sequence[str] | None = None,
               extra_vectors: Sequence[np.ndarray] = ()) -> list[Hit]:
        ranked = self.rank(self._clean(query), mode, k, papers, extra_vectors)
        return self.to_hits(ranked, mode)

    def to_hits(self, ranked: Sequence[tuple[str, float]], source: str) -> list[Hit]:
        chunks = self.library.store.chunks([cid for cid, _ in ranked])
        meta = self.library.ok_papers()
        hits = []
        for cid, score in ranked:
            chunk = chunks.get(cid)
            if chunk is None or not self.library.searchable(chunk, meta):  # removed, pending, failed or stale
                continue
            hits.append(Hit(chunk=chunk, score=float(score), rank=len(hits) + 1, source=source,
                            paper=meta.get(chunk.arxiv_id)))
        return hits
