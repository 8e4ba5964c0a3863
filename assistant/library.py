"""The library: the store, the indexes and the ingest pipeline (fetch -> parse -> chunk -> embed -> index).

Resumable by construction: a paper is marked ok only after its chunks are in every index, chunk ids
are stable, and writes are upserts, so a killed ingest is finished by the next run without duplicates.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Sequence

from assistant.config import Settings
from assistant.types import Chunk, IngestResult, Paper, PaperRecord, PaperStatus, ProgressEvent
from indexes.base import Embedder, Index
from indexes.dense import DenseIndex
from indexes.store import Store

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


class Library:
    def __init__(self, settings: Settings, embedder: Embedder, extra_indexes: dict[str, Index] | None = None):
        self.settings = settings
        self.embedder = embedder
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.index_dir / "library.sqlite")
        self.store.check_fingerprint(settings.fingerprint())
        self.dense = DenseIndex(embedder, path=settings.index_dir / "chroma", url=settings.chroma_url,
                                collection=settings.collection)
        self.extra_indexes: dict[str, Index] = dict(extra_indexes or {})
        self._fetcher = None

    # --- reading
    def papers(self) -> list[PaperRecord]:
        return self.store.papers()

    def paper_map(self) -> dict[str, Paper]:
        return {r.paper.arxiv_id: r.paper for r in self.store.papers()}

    # --- writing
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

    def ingest(self, items: Iterable[str], progress: Progress = _quiet, retry_failed: bool = True) -> list[IngestResult]:
        from ingest.sources import read_sources

        reading = read_sources(items)
        results = [IngestResult(arxiv_id=err, status=PaperStatus.failed, reason=err) for err in reading.errors]
        todo = []
        for ref in reading.refs:
            record = self.store.paper(ref.arxiv_id)
            if record and record.status == PaperStatus.ok and (ref.version is None or ref.version == record.paper.version):
                results.append(IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.ok, n_chunks=record.n_chunks, skipped=True))
            elif record and record.status == PaperStatus.failed and not retry_failed:
                results.append(IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=record.reason, skipped=True))
            else:
                todo.append(ref)
        total = len(todo)
        progress(ProgressEvent(stage="fetch", message=f"{total} papers to ingest", done=0, total=total))
        # Fetch+parse+chunk of the next paper overlaps the embedding of the current one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future | None = pool.submit(self._prepare, todo[0]) if todo else None
            for i, ref in enumerate(todo):
                prepared = pending.result() if pending else None
                pending = pool.submit(self._prepare, todo[i + 1]) if i + 1 < total else None
                results.append(self._index_prepared(ref, prepared, progress))
                progress(ProgressEvent(stage="index", message=ref.arxiv_id, done=i + 1, total=total, item=ref.arxiv_id))
        self.sync_indexes(progress)
        return results

    def _prepare(self, ref) -> tuple[Paper | None, list[Chunk], str, float]:
        """Fetch, parse and chunk one paper; returns (paper, chunks, error, seconds)."""
        from ingest.chunk import chunk_paper
        from ingest.fetch import FetchError, Fetcher
        from ingest.parse import ParseError, parse_pdf

        start = time.perf_counter()
        if self._fetcher is None:
            self._fetcher = Fetcher(self.settings)
        try:
            paper = self._fetcher.fetch(ref)
        except FetchError as exc:
            return None, [], f"fetch failed: {exc}", time.perf_counter() - start
        except Exception as exc:  # a network stack can raise anything; one paper must not stop the rest
            return None, [], f"fetch failed: {type(exc).__name__}: {exc}", time.perf_counter() - start
        try:
            parsed = parse_pdf(paper.pdf_path, paper.arxiv_id, paper.version)
            chunks = chunk_paper(parsed, self.embedder, self.settings.chunk_tokens, self.settings.chunk_overlap)
        except ParseError as exc:
            return paper, [], f"parse failed: {exc}", time.perf_counter() - start
        except Exception as exc:
            return paper, [], f"parse failed: {type(exc).__name__}: {exc}", time.perf_counter() - start
        if not chunks:
            return paper, [], "parse failed: no indexable text", time.perf_counter() - start
        return paper, chunks, "", time.perf_counter() - start

    def _index_prepared(self, ref, prepared, progress: Progress) -> IngestResult:
        paper, chunks, error, seconds = prepared
        start = time.perf_counter()
        if error:
            self.store.upsert_paper(paper or Paper(arxiv_id=ref.arxiv_id, version=ref.version), PaperStatus.failed, error, 0)
            return IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=error, seconds=seconds)
        try:
            self.store.upsert_paper(paper, PaperStatus.pending, "", len(chunks))
            stale = self.store.replace_chunks(paper.arxiv_id, chunks)
            self._index_chunks(paper.arxiv_id, chunks, stale, progress)
            self.store.set_status(paper.arxiv_id, PaperStatus.ok, "", len(chunks))
        except Exception as exc:
            reason = f"index failed: {type(exc).__name__}: {exc}"
            self.store.set_status(paper.arxiv_id, PaperStatus.failed, reason)
            return IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=reason,
                                seconds=seconds + time.perf_counter() - start)
        return IngestResult(arxiv_id=paper.arxiv_id, status=PaperStatus.ok, n_chunks=len(chunks),
                            seconds=seconds + time.perf_counter() - start)

    def _index_chunks(self, arxiv_id: str, chunks: Sequence[Chunk], stale: Sequence[str], progress: Progress) -> None:
        if stale:
            self.dense.remove(stale)
            for index in self.extra_indexes.values():
                index.remove(stale)
        # Chunks already embedded by an interrupted run are not embedded again.
        have = set(self.dense.ids_of(arxiv_id))
        missing = [c for c in chunks if c.id not in have]
        done = len(chunks) - len(missing)
        step = max(1, self.settings.embed_batch_size)
        for i in range(0, len(missing), step):
            part = missing[i:i + step]
            self.dense.add_embedded(part, self.embedder.embed([c.text for c in part]))
            done += len(part)
            progress(ProgressEvent(stage="embed", message=arxiv_id, done=done, total=len(chunks), item=arxiv_id))

    def sync_indexes(self, progress: Progress = _quiet, names: Sequence[str] | None = None) -> dict[str, int]:
        """Bring secondary indexes (BM25, ColBERT) in line with the store: add what they miss, drop what
        the store no longer has. One batched add after an ingest is far cheaper for ColBERT than one
        per paper, and this also repairs an index left behind by a killed process."""
        changed: dict[str, int] = {}
        for name, index in self.extra_indexes.items():
            if names is not None and name not in names:
                continue
            wanted = {c.id: c for c in self.store.iter_chunks(level=None)}
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

    def in_sync(self, name: str) -> bool:
        return len(self.extra_indexes[name].chunk_ids()) == self.store.count_chunks(level=None)

    def close(self) -> None:
        self.store.close()
