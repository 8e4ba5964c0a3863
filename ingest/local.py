"""PDFs from disk: find them (files, folders), tell one content from another (sha256), decide what each is to
the library, and describe it as a Paper.

Identity is the content: a PDF whose bytes were ingested before is that paper, under any name (a duplicate is
counted once). A file the library already holds a paper for, with other bytes now (an edited PDF), is a new
version of that paper through the same version machinery as arXiv's (staged beside the old one, swapped in
when complete). Anything else is a new paper, id pdf-<first 12 hex digits of its sha256> (foundation.types).
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from foundation.types import LOCAL_ID_PREFIX, PASSAGES_VERSION, Frozen, IngestResult, Paper, PaperStatus
from indexes.store import Store
from ingest.pdf_metadata import PdfMetadata


class LibraryEntry(Frozen):
    """One item of the user's library (a BibTeX entry, a Zotero item): what it says about its paper."""

    origin: Literal["bibtex", "zotero"]
    item: str = Field(description="How the user finds it: 'refs.bib: vaswani2017', 'Zotero item ABCD2345'")
    citation_key: str = ""
    title: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    doi: str = ""
    arxiv_id: str = Field(default="", description="An arXiv id the entry names (eprint, URL, archive id, arXiv DOI)")
    venue: str = ""
    abstract: str = ""
    pdf: Path | None = Field(default=None, description="Its PDF, when the entry names one that exists")
    pdf_problem: str = Field(default="", description="Why a PDF the entry names cannot be used")


class LocalPdf(Frozen):
    """A PDF to ingest: a path given or found in a folder, or a library entry's attachment."""

    path: Path
    entry: LibraryEntry | None = None

    @property
    def item(self) -> str:
        return self.entry.item if self.entry else str(self.path)


class LocalJob(Frozen):
    """One PDF to read into the library: the paper (id, version) it becomes."""

    arxiv_id: str = Field(description="The paper id (pdf-..., or an arXiv id whose PDF this is)")
    version: int
    pdf: LocalPdf
    sha256: str
    previous: Paper | None = Field(default=None, description="The paper as indexed before, for a new version")


@dataclass
class LocalPlan:
    jobs: list[LocalJob] = field(default_factory=list)
    results: list[IngestResult] = field(default_factory=list)
    known: list[tuple[LocalPdf, Paper]] = field(default_factory=list)  # already indexed: library metadata may add
    # Another file of this run with the same content: it shares the first one's result once that is known.
    duplicates: list[tuple[LocalPdf, LocalPdf]] = field(default_factory=list)


def find_pdfs(folder: Path, pattern: str) -> tuple[list[Path], list[Path]]:
    """(files matching pattern, other files) under folder and every subfolder, in a stable order. The pattern
    is matched against file names, case-insensitively ('*.pdf' takes PAPER.PDF); hidden folders are skipped."""
    matched, others = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            rel = str(path.relative_to(folder)).lower()
            hit = fnmatch.fnmatch(name.lower(), pattern.lower()) or fnmatch.fnmatch(rel, pattern.lower())
            (matched if hit else others).append(path)
    return matched, others


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_local(pdfs: list[LocalPdf], store: Store) -> LocalPlan:
    """Decide, for every PDF, whether it is new, a new version of a paper, or one already indexed."""
    plan = LocalPlan()
    claimed: dict[str, LocalPdf] = {}  # content -> the first PDF of this run that has it
    seen_paths: set[Path] = set()
    for pdf in pdfs:
        if pdf.path in seen_paths:
            continue
        seen_paths.add(pdf.path)
        try:
            sha = sha256_of(pdf.path)
        except OSError as exc:
            plan.results.append(_input_problem(pdf, f"cannot read {pdf.path}: {exc.strerror or exc}"))
            continue
        if sha in claimed:
            plan.duplicates.append((pdf, claimed[sha]))
            continue
        claimed[sha] = pdf
        owner = store.pdf_owner(sha)
        record = store.paper(owner[0]) if owner else None
        if record is not None and owner is not None:
            paper = record.paper
            if record.status == PaperStatus.ok and paper.version == owner[1] and record.passages < PASSAGES_VERSION:
                # indexed by older code (no table rows): read again as the same paper, never mixed
                plan.jobs.append(LocalJob(arxiv_id=paper.arxiv_id, version=paper.version or 1, pdf=pdf, sha256=sha,
                                          previous=paper))
                continue
            if record.status == PaperStatus.ok and paper.version == owner[1]:
                note = "" if paper.pdf_path == str(pdf.path) else f"the same PDF as {owner[2]}"
                plan.results.append(_skipped(pdf, paper.arxiv_id, note, record.n_chunks, paper.title))
                plan.known.append((pdf, paper))
                continue
            if record.status == PaperStatus.ok:
                plan.results.append(_skipped(pdf, paper.arxiv_id, f"an earlier version (v{owner[1]}) of "
                                             f"{paper.title or paper.arxiv_id}, indexed at v{paper.version}",
                                             record.n_chunks, paper.title))
                continue
        edited = next((r for r in store.papers_at_path(str(pdf.path)) if r.paper.is_local), None)
        if edited is not None and edited.paper.content_hash != sha:
            plan.jobs.append(LocalJob(arxiv_id=edited.paper.arxiv_id, version=(edited.paper.version or 1) + 1,
                                      pdf=pdf, sha256=sha, previous=edited.paper))
            continue
        paper_id = LOCAL_ID_PREFIX + sha[:12]
        existing = store.paper(paper_id)
        version = 1 if existing is None or existing.status != PaperStatus.ok else (existing.paper.version or 1) + 1
        plan.jobs.append(LocalJob(arxiv_id=paper_id, version=version, pdf=pdf, sha256=sha,
                                  previous=existing.paper if existing else None))
    return plan


def backfill_hashes(store: Store) -> int:
    """Record the content of PDFs that papers indexed before contents were recorded (schema 1) were read
    from, so a copy of one under another name is that paper. Returns how many were recorded."""
    done = 0
    for record in store.papers(PaperStatus.ok):
        path = record.paper.pdf_path
        if record.paper.content_hash or not path or not Path(path).is_file():
            continue
        sha = sha256_of(Path(path))
        store.record_pdf(sha, record.paper.arxiv_id, record.paper.version, path)
        store.update_metadata(record.paper.model_copy(update={"content_hash": sha}))
        done += 1
    return done


def local_paper(job: LocalJob, meta: PdfMetadata, arxiv_record: Paper | None) -> Paper:
    """The Paper a PDF from disk becomes. What is known comes, best first, from the user's library entry, the
    arXiv record of an id printed on the PDF, and the PDF itself (info dictionary, first page)."""
    sources = [s for s in (job.pdf.entry, arxiv_record, meta) if s is not None]

    def best(name: str, default=None):
        return next((getattr(s, name) for s in sources if getattr(s, name, None)), default)

    entry = job.pdf.entry
    return Paper(
        arxiv_id=job.arxiv_id, version=job.version, title=best("title", job.pdf.path.stem),
        authors=best("authors", ()), year=best("year"), abstract=best("abstract", ""),
        pdf_path=str(job.pdf.path), doi=best("doi", ""), citation_key=entry.citation_key if entry else "",
        eprint=(entry.arxiv_id if entry else "") or meta.arxiv_id or (arxiv_record.arxiv_id if arxiv_record else ""),
        venue=entry.venue if entry else "", origin=entry.origin if entry else "pdf", content_hash=job.sha256)


def with_entry(paper: Paper, entry: LibraryEntry | None) -> Paper:
    """A paper already indexed (or fetched from arXiv) with what the user's library says about it: their
    citation key, DOI and venue always; their title, authors and year where the paper has none."""
    if entry is None:
        return paper
    return paper.model_copy(update={
        "citation_key": entry.citation_key or paper.citation_key, "doi": entry.doi or paper.doi,
        "venue": entry.venue or paper.venue, "title": paper.title or entry.title,
        "authors": paper.authors or entry.authors, "year": paper.year or entry.year,
        "eprint": paper.eprint or (entry.arxiv_id if paper.is_local else ""),
        "origin": entry.origin if paper.origin == "pdf" else paper.origin})


def _skipped(pdf: LocalPdf, paper_id: str, note: str, n_chunks: int = 0, title: str = "") -> IngestResult:
    return IngestResult(arxiv_id=paper_id or str(pdf.path), status=PaperStatus.ok, skipped=True, n_chunks=n_chunks,
                        item=pdf.item, title=title, note=note)


def _input_problem(pdf: LocalPdf, reason: str) -> IngestResult:
    return IngestResult(arxiv_id=str(pdf.path), status=PaperStatus.failed, reason=reason, kind="input",
                        item=pdf.item)
