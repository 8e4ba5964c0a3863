"""Reading list -> indexed papers: read sources, then fetch -> parse -> chunk each paper and add it to the
library, the next paper prepared while the current one is embedded."""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

from foundation.faults import fault_point
from foundation.types import Chunk, IngestResult, Paper, PaperStatus, ProgressEvent
from indexes.library import Library
from ingest.chunk import chunk_paper
from ingest.fetch import FetchError, Fetcher
from ingest.parse import ParseError, parse_pdf
from ingest.sources import ArxivRef, read_sources

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


@dataclass
class Prepared:
    """One paper fetched, parsed and chunked, or the reason it could not be."""
    ref: ArxivRef
    paper: Paper | None
    chunks: list[Chunk]
    error: str
    seconds: float


class Ingestor:
    def __init__(self, library: Library, fetcher: Fetcher | None = None):
        self.library = library
        self.fetcher = fetcher or Fetcher(library.settings)

    def ingest(self, items: Iterable[str], progress: Progress = _quiet, retry_failed: bool = True) -> list[IngestResult]:
        """Ingest ids, arXiv URLs or reading-list files; failures are recorded with reasons, the rest goes on.
        One ingest writes to a library at a time: a second one waits for the first, then skips what it did."""
        reading = read_sources(items)
        # An unreadable item or a reading list with no ids is a problem with the input, not a failed paper.
        results = [IngestResult(arxiv_id=err, status=PaperStatus.failed, reason=err, kind="input")
                   for err in reading.errors]

        def waiting(pid: int | None) -> None:
            progress(ProgressEvent(stage="index", message=f"waiting for another ingest (pid {pid or '?'}) to finish"))

        with self.library.writing(on_wait=waiting):
            results += self._ingest(reading.refs, progress, retry_failed)
        return results

    def _ingest(self, refs: list[ArxivRef], progress: Progress, retry_failed: bool) -> list[IngestResult]:
        store = self.library.store
        results = []
        todo = []
        for ref in refs:
            record = store.paper(ref.arxiv_id)
            if record and record.status == PaperStatus.ok and (ref.version is None or ref.version == record.paper.version):
                results.append(IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.ok, n_chunks=record.n_chunks,
                                            skipped=True))
            elif record and record.status == PaperStatus.failed and not retry_failed:
                results.append(IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=record.reason,
                                            skipped=True))
            else:
                todo.append(ref)
        total = len(todo)
        progress(ProgressEvent(stage="fetch", message=f"{total} papers to ingest", done=0, total=total))
        # Fetch+parse+chunk of the next paper overlaps the embedding of the current one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future | None = pool.submit(self.prepare, todo[0]) if todo else None
            for i, ref in enumerate(todo):
                prepared = pending.result() if pending else self.prepare(ref)
                pending = pool.submit(self.prepare, todo[i + 1]) if i + 1 < total else None
                results.append(self.index(prepared, progress))
                progress(ProgressEvent(stage="index", message=ref.arxiv_id, done=i + 1, total=total, item=ref.arxiv_id))
        fault_point("before-sync")
        self.library.sync_indexes(progress)
        return results

    def prepare(self, ref: ArxivRef) -> Prepared:
        """Fetch, parse and chunk one paper."""
        start = time.perf_counter()

        def failed(paper: Paper | None, reason: str) -> Prepared:
            return Prepared(ref, paper, [], reason, time.perf_counter() - start)

        try:
            paper = self.fetcher.fetch(ref)
        except FetchError as exc:
            return failed(None, f"fetch failed: {exc}")
        except Exception as exc:  # a network stack can raise anything; one paper must not stop the rest
            return failed(None, f"fetch failed: {type(exc).__name__}: {exc}")
        try:
            parsed = parse_pdf(paper.pdf_path, paper.arxiv_id, paper.version)
            chunks = chunk_paper(parsed, self.library.embedder, self.library.settings.chunk_tokens,
                                 self.library.settings.chunk_overlap)
        except ParseError as exc:
            return failed(paper, f"parse failed: {exc}")
        except Exception as exc:
            return failed(paper, f"parse failed: {type(exc).__name__}: {exc}")
        if not chunks:
            return failed(paper, "parse failed: no indexable text")
        return Prepared(ref, paper, chunks, "", time.perf_counter() - start)

    def index(self, prepared: Prepared, progress: Progress) -> IngestResult:
        ref, paper = prepared.ref, prepared.paper
        start = time.perf_counter()
        if prepared.error:
            reason = self.library.record_failure(paper or Paper(arxiv_id=ref.arxiv_id, version=ref.version),
                                                 prepared.error)
            return IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=reason,
                                seconds=prepared.seconds)
        assert paper is not None
        try:
            self.library.add_paper(paper, prepared.chunks, progress)
        except Exception as exc:
            reason = self.library.record_failure(paper, f"index failed: {type(exc).__name__}: {exc}")
            return IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=reason,
                                seconds=prepared.seconds + time.perf_counter() - start)
        return IngestResult(arxiv_id=paper.arxiv_id, status=PaperStatus.ok, n_chunks=len(prepared.chunks),
                            seconds=prepared.seconds + time.perf_counter() - start)

    def close(self) -> None:
        self.fetcher.close()
