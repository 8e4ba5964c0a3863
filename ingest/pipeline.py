"""Reading list -> indexed papers: read the inputs (ids, reading lists, PDFs, folders, BibTeX and Zotero
libraries), then fetch (or read from disk) -> parse -> chunk each paper and add it to the library, the next
paper prepared while the current one is embedded."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from foundation.faults import fault_point
from foundation.types import PASSAGES_VERSION, Chunk, IngestResult, Paper, PaperStatus, ProgressEvent
from indexes.library import Library
from ingest.chunk import chunk_paper
from ingest.fetch import FetchError, Fetcher, check_pdf
from ingest.inputs import Inputs, read_inputs
from ingest.local import (LibraryEntry, LocalJob, LocalPlan, backfill_hashes, local_paper, plan_local,
                          sha256_of, with_entry)
from ingest.parse import ParseError, parse_pdf
from ingest.pdf_metadata import PdfMetadata, read_pdf_metadata
from ingest.sources import ArxivRef

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


def _in_background(fn: Callable[..., Prepared], *args) -> Future:
    """fn(*args) in a daemon thread. A ThreadPoolExecutor's threads are joined when the process exits, so a
    ctrl+c waited for the paper being parsed; a daemon thread lets the ingest end at once."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread as it is)
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="ingest-prepare").start()
    return future


@dataclass
class Prepared:
    """One paper fetched (or read from disk), parsed and chunked, or the reason it could not be."""
    ref: ArxivRef | LocalJob
    paper: Paper | None
    chunks: list[Chunk]
    error: str
    seconds: float
    note: str = ""  # what was left out of a paper that is otherwise fine (dropped pages)


class Ingestor:
    def __init__(self, library: Library, fetcher: Fetcher | None = None):
        self.library = library
        self.fetcher = fetcher or Fetcher(library.settings)

    def ingest(self, items: Iterable[str], progress: Progress = _quiet, retry_failed: bool = True) -> list[IngestResult]:
        """Ingest ids, arXiv URLs, reading-list files, PDFs, folders of PDFs, .bib files and Zotero libraries;
        failures are recorded with reasons, the rest goes on. One ingest writes to a library at a time: a second
        one waits for the first, then skips what it did."""
        settings = self.library.settings
        inputs = read_inputs(items, settings.pdf_glob, settings.zotero_collection)
        # An unreadable item, a reading list with no ids or a library entry with no PDF and no arXiv id is a
        # problem with the input, not a failed paper.
        results = [IngestResult(arxiv_id=err, status=PaperStatus.failed, reason=err, kind="input")
                   for err in inputs.errors]

        def waiting(pid: int | None) -> None:
            progress(ProgressEvent(stage="index", message=f"waiting for another ingest (pid {pid or '?'}) to finish"))

        with self.library.writing(on_wait=waiting):
            results += self._ingest(inputs, progress, retry_failed)
        return results

    def _ingest(self, inputs: Inputs, progress: Progress, retry_failed: bool, sync: bool = True) -> list[IngestResult]:
        """sync: bring BM25/ColBERT in line with the store at the end (doctor --repair, refilling a lost store,
        syncs only once it knows every paper came back: else the indexes hold what the store lost)."""
        store = self.library.store
        results = []
        todo: list[ArxivRef | LocalJob] = []
        for ref in inputs.refs:
            record = store.paper(ref.arxiv_id)
            entry = inputs.entries.get(ref.arxiv_id)
            current = record is not None and record.passages >= PASSAGES_VERSION  # else re-indexed, never mixed
            same = record is not None and (ref.version is None or ref.version == record.paper.version)
            if record and record.status == PaperStatus.ok and current and same:
                note = self._add_library_metadata(record.paper, entry)
                results.append(IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.ok, n_chunks=record.n_chunks,
                                            skipped=True, title=record.paper.title, note=note,
                                            item=entry.item if entry else ""))
            elif record and record.status == PaperStatus.failed and not retry_failed:
                results.append(IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=record.reason,
                                            skipped=True))
            else:
                todo.append(ref)
        plan = None
        if inputs.pdfs:
            backfill_hashes(store)
            plan = plan_local(inputs.pdfs, store)
            results += self._refresh_known(plan)
            todo += plan.jobs
        total = len(todo)
        progress(ProgressEvent(stage="fetch", message=f"{total} papers to ingest", done=0, total=total))
        # Fetch+parse+chunk of the next paper overlaps the embedding of the current one.
        pending: Future | None = _in_background(self.prepare, todo[0]) if todo else None
        for i, ref in enumerate(todo):
            prepared = pending.result() if pending else self.prepare(ref)
            pending = _in_background(self.prepare, todo[i + 1]) if i + 1 < total else None
            results.append(self.index(prepared, progress, inputs))
            name = ref.pdf.path.name if isinstance(ref, LocalJob) else ref.arxiv_id
            progress(ProgressEvent(stage="index", message=name, done=i + 1, total=total, item=ref.arxiv_id))
        if plan is not None:  # another file with the same bytes: counted once, with the first one's outcome
            by_item = {r.item: r for r in results if r.item}
            for pdf, first in plan.duplicates:
                done = by_item.get(first.item)
                if done is not None:
                    results.append(done.model_copy(update={"item": pdf.item, "skipped": True,
                                                           "note": f"the same PDF as {first.item}"}))
        fault_point("before-sync")
        if sync:
            self.library.sync_indexes(progress)
        return results

    def _refresh_known(self, plan: LocalPlan) -> list[IngestResult]:
        """Papers whose PDF is indexed already: a moved file is opened where it is now, and what the user's
        library says about them is written down (nothing is re-indexed). Returns the plan's results, noted."""
        notes: dict[str, str] = {}
        for pdf, paper in plan.known:
            if paper.pdf_path != str(pdf.path) and not Path(paper.pdf_path or "").is_file():
                paper = paper.model_copy(update={"pdf_path": str(pdf.path)})
                self.library.store.update_metadata(paper)
                notes[pdf.item] = "moved: its PDF is read from here now"
            added = self._add_library_metadata(paper, pdf.entry)
            if added:
                notes[pdf.item] = "; ".join(n for n in (notes.get(pdf.item), added) if n)
        return [r.model_copy(update={"note": "; ".join(n for n in (r.note, notes[r.item]) if n)})
                if r.item in notes else r for r in plan.results]

    def _add_library_metadata(self, paper: Paper, entry: LibraryEntry | None) -> str:
        """The user's library entry's citation key, DOI ... on a paper already indexed (nothing re-indexed)."""
        updated = with_entry(paper, entry)
        if updated == paper:
            return ""
        self.library.store.update_metadata(updated)
        return f"library metadata added from {entry.item}"

    def prepare(self, ref: ArxivRef | LocalJob) -> Prepared:
        """Fetch (or read from disk), parse and chunk one paper."""
        start = time.perf_counter()

        def failed(paper: Paper | None, reason: str) -> Prepared:
            return Prepared(ref, paper, [], reason, time.perf_counter() - start)

        if isinstance(ref, LocalJob):
            paper, problem = self._read_local(ref)
            if problem:
                return failed(paper, problem)
        else:
            try:
                paper = self.fetcher.fetch(ref)
            except FetchError as exc:
                return failed(None, f"fetch failed: {exc}")
            except Exception as exc:  # a network stack can raise anything; one paper must not stop the rest
                return failed(None, f"fetch failed: {type(exc).__name__}: {exc}")
            if paper.pdf_path and Path(paper.pdf_path).is_file():
                paper = paper.model_copy(update={"content_hash": sha256_of(Path(paper.pdf_path))})
        settings = self.library.settings
        try:
            parsed = parse_pdf(paper.pdf_path, paper.arxiv_id, paper.version, max_chars=settings.max_paper_chars)
            chunks = chunk_paper(parsed, self.library.embedder, settings.chunk_tokens, settings.chunk_overlap)
        except ParseError as exc:
            return failed(paper, f"parse failed: {exc}")
        except Exception as exc:
            return failed(paper, f"parse failed: {type(exc).__name__}: {exc}")
        if not chunks:
            return failed(paper, "parse failed: no indexable text")
        if len(chunks) > settings.max_paper_chunks:
            return failed(paper, f"parse failed: {len(chunks):,} passages, more than max_paper_chunks "
                                 f"({settings.max_paper_chunks:,}): not a paper this app can index")
        return Prepared(ref, paper, chunks, "", time.perf_counter() - start, note="; ".join(parsed.dropped_pages))

    def _read_local(self, job: LocalJob) -> tuple[Paper, str]:
        """A PDF from disk as a Paper (its metadata, the arXiv record of an id printed on it), or why not."""
        entry = job.pdf.entry
        bare = Paper(arxiv_id=job.arxiv_id, version=job.version, pdf_path=str(job.pdf.path),
                     title=(entry.title if entry else "") or job.pdf.path.stem, content_hash=job.sha256,
                     origin=entry.origin if entry else "pdf")
        problem = check_pdf(job.pdf.path)
        if problem:
            return bare, f"unreadable PDF: {problem}"
        try:
            meta = read_pdf_metadata(job.pdf.path)
        except Exception:  # metadata is a bonus: the text may still be there (parse says if not)
            meta = PdfMetadata()
        arxiv_id = (entry.arxiv_id if entry else "") or meta.arxiv_id
        try:
            record = self.fetcher.metadata(ArxivRef(arxiv_id=arxiv_id)) if arxiv_id else None
        except Exception:  # the arXiv record is a bonus too: without it the PDF's own metadata is used
            record = None
        return local_paper(job, meta, record), ""

    def index(self, prepared: Prepared, progress: Progress, inputs: Inputs | None = None) -> IngestResult:
        ref, paper = prepared.ref, prepared.paper
        start = time.perf_counter()
        local = isinstance(ref, LocalJob)
        entry = ref.pdf.entry if local else (inputs.entries.get(ref.arxiv_id) if inputs else None)
        about = {"item": ref.pdf.item if local else (entry.item if entry else ""),
                 "title": paper.title if paper else ""}
        if prepared.error:
            reason = self.library.record_failure(paper or Paper(arxiv_id=ref.arxiv_id, version=ref.version),
                                                 prepared.error)
            return IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=reason,
                                seconds=prepared.seconds, **about)
        assert paper is not None
        if not local:
            paper = with_entry(paper, entry)
        try:
            self.library.add_paper(paper, prepared.chunks, progress, note=prepared.note)
        except KeyboardInterrupt:
            # ctrl+c while this paper is embedded: it must not stay pending (half in the indexes, warned about
            # by every command); the papers before it are ok, and the next ingest starts it again.
            self.library.record_failure(paper, "ingest was interrupted (ctrl+c) while it was embedded; ingest it again")
            raise
        except Exception as exc:
            reason = self.library.record_failure(paper, f"index failed: {type(exc).__name__}: {exc}")
            return IngestResult(arxiv_id=ref.arxiv_id, status=PaperStatus.failed, reason=reason,
                                seconds=prepared.seconds + time.perf_counter() - start, **about)
        if paper.content_hash:
            self.library.store.record_pdf(paper.content_hash, paper.arxiv_id, paper.version, paper.pdf_path or "")
        edited = local and ref.previous is not None and ref.previous.content_hash not in ("", ref.sha256)
        note = f"edited: new version v{paper.version} (was v{ref.previous.version})" if edited else ""
        return IngestResult(arxiv_id=paper.arxiv_id, status=PaperStatus.ok, n_chunks=len(prepared.chunks),
                            seconds=prepared.seconds + time.perf_counter() - start, note=note, reason=prepared.note, **about)

    def close(self) -> None:
        self.fetcher.close()
