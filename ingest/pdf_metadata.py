"""What a PDF says about itself: title, authors and year from its info dictionary and its first page, and an
arXiv id or DOI printed there. For PDFs from disk, whose only other source is the user's library (if any).

Most papers leave the info dictionary empty (47 of the 53 arXiv PDFs in ../shared/papers have no /Title), so the
title is read from the first page's layout: the largest type in the page's top half, with the lines that
continue it (small capitals and two-line titles included). Over those 53 PDFs it gave 52 right titles.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pypdf

from foundation.types import Frozen
from ingest.parse import normalize_text
from ingest.sources import ID as ARXIV_ID

_STAMP = re.compile(rf"arXiv:\s?(?P<id>{ARXIV_ID})(?:v(?P<version>\d+))?\s*\[[\w.\-]+\]\s*(?P<day>\d{{1,2}})\s+"
                    r"(?P<month>[A-Z][a-z]{2})\w*\s+(?P<year>(?:19|20)\d\d)")
_ARXIV = re.compile(rf"(?:arxiv\.org/(?:abs|pdf)/|arXiv:\s?|10\.48550/arXiv\.)(?P<id>{ARXIV_ID})(?:v(?P<version>\d+))?"
                    r"(?!\d)", re.IGNORECASE)
_DOI = re.compile(r"\b(10\.\d{4,9}/[-._;()/:<>A-Za-z0-9]+[A-Za-z0-9])")
_YEAR = re.compile(r"(?<!\d)((?:19[5-9]|20[0-4])\d)(?!\d)")
# Titles that tools write instead of the paper's: file names, "Microsoft Word - x.docx", "untitled".
_JUNK_TITLE = re.compile(r"(?i)(^untitled|^microsoft word|\.(?:dvi|tex|docx?|pdf|ps|indd)\b|^paper\s*\d*$|^\W*$)")
_TOKEN = r"(?:[A-ZÀ-ÖØ-Þ][\w'’\-]+|[A-Z]\.(?:\s?[A-Z]\.)*)"
_NAME = re.compile(rf"^{_TOKEN}(?:\s+(?:{_TOKEN}|van|von|de|der|da|del|la|le|di|dos|du)){{1,3}}$")
# Words that mark an affiliation, a place or a heading, never a person's name.
_NOT_NAME = re.compile(r"\b(?:Universit\w*|Institut\w*|College|School|Department|Dept|Laborator\w*|Labs?|Research|"
                       r"Google|Microsoft|Facebook|Meta|Inc|Corp\w*|Cent(?:er|re)|Abstract|Brain|DeepMind|OpenAI|"
                       r"Technolog\w*|Sciences?|Engineering|Computer|AI|Equal|Contribution|Work|Correspondence|"
                       r"Conference|Proceedings|Preprint|Review|Published|Model|Models|Learning|Neural|Networks?|"
                       r"Face|View|Beach|City|Park|Valley|Street|Road|Avenue|China|USA|Germany|France|Canada|Israel|"
                       r"Team|Group|Foundation|Academy|Hospital|Company|Limited|Ltd|GmbH)\b")
_MARKS = re.compile(r"[\d∗†‡*§¶♦♣♠♥⋆#]+")


class PdfMetadata(Frozen):
    """What one PDF says about itself; empty fields are unknown."""

    title: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    doi: str = ""
    arxiv_id: str = ""
    arxiv_version: int | None = None
    pages: int = 0


@dataclass
class _Line:
    y: float
    size: float
    parts: list[tuple[float, float, str]] = field(default_factory=list)  # (x, type size, text) in drawing order

    @property
    def text(self) -> str:
        return " ".join("".join(t for _, _, t in self.parts).split())

    @property
    def spaced(self) -> str:
        """The text with a wide gap ("  ") where a piece starts well right of where the one before ended: author
        names set apart by space alone ("Jeremy Howard      Sebastian Ruder") stay apart."""
        out, end = "", None
        for x, size, text in self.parts:
            if end is not None and x > end + 1.5 * size:
                out += "  "
            out += text
            end = x + 0.5 * size * len(text)
        return out


def read_pdf_metadata(path: Path) -> PdfMetadata:
    """Metadata of the PDF at path; raises what pypdf raises for a PDF it cannot open (callers check first)."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = pypdf.PdfReader(path)
    if reader.is_encrypted:
        reader.decrypt("")
    info = reader.metadata or {}
    page = reader.pages[0]
    text = normalize_text(_page_text(page))
    lines = _lines(page)
    title_lines = _title_lines(lines, page)
    info_title = _clean(str(info.get("/Title") or ""))
    title = info_title if _good_title(info_title) else " ".join(_join_title([ln.text for ln in title_lines]).split())
    info_authors = _split_authors(str(info.get("/Author") or ""))
    authors = info_authors or _page_authors(lines, title_lines)
    stamp = _STAMP.search(text)
    found = stamp or _ARXIV.search(text) or _ARXIV.search(" ".join(str(v) for v in info.values()))
    doi = _first_doi(" ".join(str(info.get(k) or "") for k in ("/doi", "/DOI", "/Subject", "/Keywords")) + " " + text)
    # A new-style arXiv id starts with the year of its first version (the stamp dates the version read)
    year = 2000 + int(found.group("id")[:2]) if found and "/" not in found.group("id") else None
    year = year or (int(stamp.group("year")) if stamp else _info_year(str(info.get("/CreationDate") or "")))
    if year is None:
        years = [int(y) for y in _YEAR.findall(text)]
        year = max(set(years), key=years.count) if years else None
    return PdfMetadata(title=_clean(title), authors=authors, year=year, doi=doi,
                       arxiv_id=found.group("id") if found else "",
                       arxiv_version=int(found.group("version")) if found and found.group("version") else None,
                       pages=len(reader.pages))


def _page_text(page) -> str:
    """The first page's text without its figures' labels (as ingest.parse reads pages), or with them when the
    page is drawn wholly inside forms (1706.03762)."""
    with pypdf.apply_configuration(xform_maximum_invocations_per_extraction=0):
        text = page.extract_text() or ""
    return text if len(text.strip()) >= 200 else (page.extract_text() or "")


def _lines(page) -> list[_Line]:
    """The page's text as lines (top first), each with its largest type size in points. Rotated text (arXiv's
    side stamp) is left out."""
    items: list[tuple[float, float, float, str]] = []

    def visit(text: str, cm, tm, _font, size: float) -> None:
        if not text.strip():
            if items and text:  # a space between two pieces of one line
                items[-1] = (*items[-1][:3], items[-1][3] + text)
            return
        if abs(tm[1]) > abs(tm[0]) or abs(cm[1]) > abs(cm[0]):
            return
        scale = (tm[2] ** 2 + tm[3] ** 2) ** 0.5 * (cm[2] ** 2 + cm[3] ** 2) ** 0.5
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        items.append((size * scale, x, y, text))

    with pypdf.apply_configuration(xform_maximum_invocations_per_extraction=0):
        page.extract_text(visitor_text=visit)
    if sum(len(item[3]) for item in items) < 200:
        items.clear()
        page.extract_text(visitor_text=visit)
    lines: list[_Line] = []
    for size, x, y, text in items:
        line = next((ln for ln in lines if abs(ln.y - y) <= 0.3 * max(size, ln.size)), None)
        if line is None:
            lines.append(_Line(y, size, [(x, size, text)]))
        else:
            line.size = max(line.size, size)
            line.parts.append((x, size, text))
    return sorted(lines, key=lambda ln: -ln.y)


def _title_lines(lines: list[_Line], page) -> list[_Line]:
    """The title: the first line in the top half set in the page's largest type there, and the lines right under
    it in type nearly as large (a two-line title; small capitals are smaller than the capitals of a line)."""
    box = page.mediabox
    top, height = float(box.top), float(box.height)
    upper = [ln for ln in lines if ln.y > top - 0.5 * height and len(ln.text) > 1
             and not ln.text.lower().startswith("arxiv")]
    if not upper:
        return []
    big = max(ln.size for ln in upper)
    start = next(i for i, ln in enumerate(upper) if ln.size >= 0.97 * big)
    kept = [upper[start]]
    for line in upper[start + 1:]:
        if kept[-1].y - line.y > 1.7 * big or line.size < 0.75 * big:
            break
        kept.append(line)
    return kept


def _join_title(lines: list[str]) -> str:
    out = ""
    for line in lines:
        out = out[:-1] + line if out.endswith("-") and line[:1].isalpha() else f"{out} {line}".strip()
    return out


def _page_authors(lines: list[_Line], title_lines: list[_Line]) -> tuple[str, ...]:
    """Person names in the lines between the title and the abstract: a best guess (affiliations and places
    are filtered by word; a library entry's authors always win over it)."""
    if not title_lines:
        return ()
    after = lines[lines.index(title_lines[-1]) + 1:][:15]
    names: list[str] = []
    for line in after:
        text = line.spaced
        if re.match(r"(?i)abstract\b|\d+\s+introduction\b", text):
            break
        if "@" in text:
            continue
        for part in re.split(r",|\band\b|;|\s{2,}|[∗†‡*§¶]", text):
            name = _MARKS.sub("", part).strip()
            if _NAME.match(name) and not _NOT_NAME.search(name) and name not in names:
                names.append(name)
    return tuple(names[:20])


def _split_authors(text: str) -> tuple[str, ...]:
    text = _clean(text)
    if not text or _JUNK_TITLE.search(text):
        return ()
    parts = [p.strip() for p in re.split(r";|,|\band\b", text) if p.strip()]
    return tuple(p for p in parts if len(p.split()) <= 5)


def _good_title(title: str) -> bool:
    return len(title) >= 8 and len(title.split()) >= 2 and not _JUNK_TITLE.search(title)


def _clean(text: str) -> str:
    return " ".join(normalize_text(text).replace("\x00", "").split())


def _first_doi(text: str) -> str:
    for match in _DOI.finditer(text):
        doi = match.group(1).rstrip(".,;:)")
        if not doi.lower().startswith("10.48550/arxiv."):  # arXiv's own DOI names the arXiv id, found separately
            return doi
    return ""


def _info_year(date: str) -> int | None:
    """The year of a PDF date (D:YYYYMMDD...)."""
    match = re.match(r"(?:D:)?((?:19|20)\d\d)", date.strip())
    return int(match.group(1)) if match else None
