"""What `ingest` was given -> what to read: arXiv ids, URLs and text reading lists (ingest.sources), PDF files,
folders of PDFs, BibTeX files and Zotero libraries (ingest.local, .bibtex, .zotero).

An item is an arXiv reference if it parses as one; otherwise a path: a folder holding zotero.sqlite is a Zotero
library, any other folder is searched for PDFs (every subfolder, `pdf_glob`); a file is a PDF (by name or by its
%PDF- header), a .bib library, a Zotero database (*.sqlite) or else a text reading list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ingest.bibtex import BibtexError, read_bibtex
from ingest.local import LibraryEntry, LocalPdf, find_pdfs
from ingest.sources import ArxivRef, BadSource, parse_ref, read_sources
from ingest.zotero import ZoteroError, read_zotero


@dataclass
class Inputs:
    refs: list[ArxivRef] = field(default_factory=list)
    pdfs: list[LocalPdf] = field(default_factory=list)
    entries: dict[str, LibraryEntry] = field(default_factory=dict)  # arXiv id -> the library entry naming it
    errors: list[str] = field(default_factory=list)  # items that name no paper, with the reason


def read_inputs(items: Iterable[str], pdf_glob: str = "*.pdf", zotero_collection: str = "") -> Inputs:
    inputs = Inputs()
    plain: list[str] = []
    for item in items:
        path = Path(item).expanduser()
        if _is_ref(item) or not path.exists():
            plain.append(item)
        elif path.is_dir() and (path / "zotero.sqlite").is_file():
            _add_library(inputs, item, lambda: read_zotero(path, zotero_collection))
        elif path.is_dir():
            _add_folder(inputs, path, pdf_glob)
        elif path.suffix.lower() == ".pdf" or _has_pdf_header(path):
            inputs.pdfs.append(LocalPdf(path=path.resolve()))
        elif path.suffix.lower() == ".bib":
            _add_library(inputs, item, lambda: _bibtex(path, inputs))
        elif path.suffix.lower() in (".sqlite", ".db") and path.name.startswith("zotero"):
            _add_library(inputs, item, lambda: read_zotero(path, zotero_collection))
        else:
            plain.append(item)
    reading = read_sources(plain)
    known = {r.arxiv_id for r in inputs.refs}
    inputs.refs += [r for r in reading.refs if r.arxiv_id not in known]
    inputs.errors += reading.errors
    return inputs


def _is_ref(item: str) -> bool:
    try:
        parse_ref(item)
        return True
    except BadSource:
        return False


def _has_pdf_header(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"%PDF-"
    except OSError:
        return False


def _add_folder(inputs: Inputs, folder: Path, pattern: str) -> None:
    pdfs, others = find_pdfs(folder, pattern)
    inputs.pdfs += [LocalPdf(path=p.resolve()) for p in pdfs]
    if not pdfs:
        inputs.errors.append(f"no files matching {pattern!r} in {folder}")
    elif others:
        shown = ", ".join(p.name for p in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        inputs.errors.append(f"{folder}: {len(others)} file{'s' * (len(others) > 1)} not matching {pattern!r} "
                             f"left out: {shown}")


def _bibtex(path: Path, inputs: Inputs) -> list[LibraryEntry]:
    entries, problems = read_bibtex(path)
    inputs.errors += problems
    return entries


def _add_library(inputs: Inputs, item: str, read) -> None:
    """A library's entries: those with a PDF are read from it, those naming only an arXiv id are fetched, the
    rest are listed with the reason."""
    try:
        entries: list[LibraryEntry] = read()
    except (BibtexError, ZoteroError) as exc:
        inputs.errors.append(str(exc))
        return
    if not entries:
        inputs.errors.append(f"no entries in {item}")
    for entry in entries:
        if entry.pdf is not None:
            inputs.pdfs.append(LocalPdf(path=entry.pdf, entry=entry))
        elif entry.arxiv_id:
            if entry.arxiv_id not in inputs.entries:
                inputs.refs.append(ArxivRef(arxiv_id=entry.arxiv_id))
                inputs.entries[entry.arxiv_id] = entry
        else:
            why = entry.pdf_problem or "no PDF attached and no arXiv id"
            inputs.errors.append(f"{entry.item}: skipped, {why}")
