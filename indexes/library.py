"""The library: the SQLite store (source of truth) and every index built from it, kept in step.

Resumable by construction: a paper is marked ok only after its chunks are in the store and the dense
index, chunk ids are stable and writes are upserts, so a killed ingest is finished by the next run
without duplicates. Secondary indexes (BM25, ColBERT) are synced from the store in one batch.
"""
from __future__ import annotations

from typing import Callable, Sequence

from assistant.core.config import Settings
from assistant.core.types import Chunk, Paper, PaperRecord, PaperStatus, ProgressEvent
from indexes.base import Embedder, Index
from indexes.dense import DenseIndex
from indexes.raptor import CORPUS_ID
from indexes.store import Store

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


def build_extra_indexes(settings: Settings, embedder: Embedder | None = None) -> dict[str, Index]:
    """The secondary indexes settings ask for; each loads its files (and ColBERT its model) on first use."""
    made: dict[str, Index] = {}
    for name in dict.fromkeys(settings.indexes):
        if name == "bm25":
            from indexes.bm25 import BM25Index

            made[name] = BM25Index(settings.index_dir / "bm25")
        elif name == "colbert":
            from indexes.colbert import ColBERTIndex

            made[name] = ColBERTIndex(settings.index_dir / "colbert", checkpoint=settings.colbert_checkpoint,
                                      cache_dir=settings.cache_dir / "colbert", encoder=embedder)
    return made


class Library:
    def __init__(self, settings: Settings, embedder: Embedder, extra_indexes: dict[str, Index] | None = None):
        self.settings = settings
        self.embedder = embedder
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.index_dir / "library.sqlite")
        self.store.check_fingerprint(settings.fingerprint())
        self.dense = DenseIndex(embedder, path=settings.index_dir / "chroma", url=settings.chroma_url,
                                collection=settings.collection)
        self.extra_indexes: dict[str, Index] = (build_extra_indexes(settings, embedder) if extra_indexes is None
                                                else dict(extra_indexes))

    # --- reading
    def papers(self) -> list[PaperRecord]:
        return self.store.papers()

    def paper_map(self) -> dict[str, Paper]:
        return {r.paper.arxiv_id: r.paper for r in self.store.papers()}

    def searchable(self, chunk: Chunk, ok_papers: dict[str, Paper]) -> bool:
        """The invariant every search result obeys: its paper is ok in the store, at the paper's current
        version (corpus-level summaries belong to no paper)."""
        if chunk.arxiv_id == CORPUS_ID:
            return True
        paper = ok_papers.get(chunk.arxiv_id)
        return paper is not None and chunk.version == paper.version

    def ok_papers(self) -> dict[str, Paper]:
        return {r.paper.arxiv_id: r.paper for r in self.store.papers(PaperStatus.ok)}

    # --- writing
    def add_paper(self, paper: Paper, chunks: Sequence[Chunk], progress: Progress = _quiet) -> None:
        """Store a paper's chunks and embed them into the dense index; the paper is ok once both hold them.
        Secondary indexes catch up in `sync_indexes`."""
        self.store.upsert_paper(paper, PaperStatus.pending, "", len(chunks))
        stale = self.store.replace_chunks(paper.arxiv_id, chunks)
        if stale:
            self.dense.remove(stale)
            for index in self.extra_indexes.values():
                index.remove(stale)
        # Chunks already embedded by an interrupted run are not embedded again.
        have = set(self.dense.ids_of(paper.arxiv_id))
        missing = [c for c in chunks if c.id not in have]
        done = len(chunks) - len(missing)
        step = max(1, self.settings.embed_batch_size)
        for i in range(0, len(missing), step):
            part = missing[i:i + step]
            self.dense.add_embedded(part, self._embed(part))
            done += len(part)
            progress(ProgressEvent(stage="embed", message=paper.arxiv_id, done=done, total=len(chunks),
                                   item=paper.arxiv_id))
        self.store.set_status(paper.arxiv_id, PaperStatus.ok, "", len(chunks))

    def _embed(self, chunks: Sequence[Chunk]):
        """Dense vectors of chunks; indexes that take token vectors from the same pass (ColBERT) keep theirs."""
        takers = [ix for ix in self.extra_indexes.values() if getattr(getattr(ix, "shared", None), "embedder", None)
                  is self.embedder]
        if not takers:
            return self.embedder.embed([c.text for c in chunks])
        pooled, tokens, ids = self.embedder.encode([c.text for c in chunks])
        for index in takers:
            index.stage(chunks, tokens, ids)
        return pooled

    def mark_failed(self, paper: Paper, reason: str) -> None:
        self.store.upsert_paper(paper, PaperStatus.failed, reason, 0)

    def remove(self, arxiv_id: str) -> bool:
        """Remove a paper from the store and every index."""
        if self.store.paper(arxiv_id) is None:
            return False
        ids = [c.id for c in self.store.chunks_of(arxiv_id, level=None)]
        self.dense.remove(ids)
        for index in self.extra_indexes.values():
            index.remove(ids)
        self.store.delete_paper(arxiv_id)
        return True

    def sync_indexes(self, progress: Progress = _quiet, names: Sequence[str] | None = None) -> dict[str, int]:
        """Bring secondary indexes (BM25, ColBERT) in line with the store's leaf passages: add what they
        miss, drop what the store no longer has. One batched add after an ingest is far cheaper for
        ColBERT than one per paper, and this also repairs an index left behind by a killed process.
        Summary nodes (level > 0) stay out: searching these indexes is leaf-only."""
        changed: dict[str, int] = {}
        for name, index in self.extra_indexes.items():
            if names is not None and name not in names:
                continue
            wanted = {c.id: c for c in self.store.iter_chunks(level=0)}
            have = set(index.chunk_ids())
            gone = sorted(have - wanted.keys())
            new = [c for cid, c in wanted.items() if cid not in have]
            if gone:
                index.remove(gone)
            if new:
                message = f"{name} index: adding {len(new)} passages"
                progress(ProgressEvent(stage="build", message=message, done=0, total=len(new)))
                index.add(new, progress=lambda done, total: progress(
                    ProgressEvent(stage="build", message=message, done=done, total=total)))
                progress(ProgressEvent(stage="build", message=message, done=len(new), total=len(new)))
            changed[name] = len(new) + len(gone)
        return changed

    def close(self) -> None:
        self.store.close()
