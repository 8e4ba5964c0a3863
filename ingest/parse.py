"""PDF -> ParsedPaper: pypdf page text, cleaned, with sections, references and page offsets.

Cleaning is kept close to pypdf's output on purpose: gold evidence strings are raw pypdf text,
and `normalize_text` (a context-free character map) must turn them into substrings of our text.
Line-level steps (header/footer removal, joining hyphenated line breaks) only touch places that
evidence strings do not span.

Appendices after the references are kept: the references are the span from references_start to
the first appendix heading after it (a Section), and the chunker skips only that span.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pypdf
from pypdf.errors import LimitReachedError, PyPdfError

from foundation.types import ParsedPaper, Section
from ingest.glyphs import resolve_private_use

REFERENCES_TITLE = "References"
# A page whose text outside form XObjects is shorter than this is read again with them: some PDFs draw
# whole pages as forms (1706.03762, 1707.06347 in the corpus), most draw only figures with them.
FORM_PAGE_MIN_CHARS = 200
# Bounds on what one PDF may cost, each far above the corpus (53 papers: the largest page's content stream
# 244 KB, its text 16,050 characters; the longest paper 385,558 characters). A zlib bomb is cut where a
# stream inflates past STREAM_LIMIT_BYTES (pypdf's own default: 75 MB); a page past MAX_PAGE_CHARS is left
# out and named; a paper past max_chars fails with that reason.
STREAM_LIMIT_BYTES = 16_000_000
MAX_PAGE_CONTENT_BYTES = 4_000_000  # a page's drawing instructions; past this it is left out unread
MAX_PAGE_CHARS = 200_000
MAX_PAPER_CHARS = 2_000_000


class ParseError(RuntimeError):
    """A PDF that cannot give usable text; the message says why."""


class PageText(NamedTuple):
    """The pages' text ("" for a page left out) and, per page left out, why (naming the page)."""
    pages: list[str]
    dropped: list[str]


def _char_map() -> dict[int, str]:
    table: dict[int, str] = {cp: unicodedata.normalize("NFKC", chr(cp)) for cp in range(0xFB00, 0xFB07)}  # ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ
    # Math italic/bold letters (𝑣, 𝐵, ℎ): plain letters make them searchable by word.
    for cp in range(0x1D400, 0x1D800):
        folded = unicodedata.normalize("NFKC", chr(cp))
        if len(folded) == 1 and folded != chr(cp):
            table[cp] = folded
    table[0x210E] = "h"
    for cp in (0x00A0, 0x2007, 0x202F, *range(0x2000, 0x200B)):  # odd spaces
        table[cp] = " "
    table[0x00AD] = ""  # soft hyphen
    return table


_CHAR_MAP = _char_map()


def normalize_text(s: str) -> str:
    """The character-level normalisation applied to page text; apply it to evidence before matching.

    Context-free and character by character, so a normalised substring stays a substring.
    """
    return s.translate(_CHAR_MAP)


# ---------------------------------------------------------------- reading
def _read_pages(path: Path, max_chars: int = MAX_PAPER_CHARS, max_page_chars: int = MAX_PAGE_CHARS) -> PageText:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise ParseError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if b"%PDF-" not in head:
        raise ParseError(f"{path}: not a PDF (no %PDF- header)")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns loudly about harmless quirks
    encrypted = False
    pages: list[str] = []
    dropped: list[str] = []
    read = 0
    try:
        with pypdf.apply_configuration(zlib_maximum_output_length=STREAM_LIMIT_BYTES):
            reader = pypdf.PdfReader(path)
            encrypted = reader.is_encrypted
            if encrypted and not reader.decrypt(""):
                raise ParseError(f"{path}: encrypted (an empty password does not open it)")
            for number, page in enumerate(reader.pages, start=1):
                try:
                    size = _content_size(page)
                    if size > MAX_PAGE_CONTENT_BYTES:  # reading it would cost seconds a megabyte
                        pages.append("")
                        dropped.append(f"page {number} left out: {size:,} bytes of drawing instructions "
                                       f"(more than {MAX_PAGE_CONTENT_BYTES:,})")
                        continue
                    text = _page_text(page)
                except Exception as exc:  # one bad page (odd font, broken stream, a bomb) should not lose the paper
                    pages.append("")
                    dropped.append(f"page {number} left out: {_why(exc)}")
                    continue
                read += len(text)
                if read > max_chars:  # stop reading: what is past the cap would only be thrown away
                    raise ParseError(f"{path}: more than {max_chars:,} characters of text by page {number} "
                                     f"(max_paper_chars; the longest paper in the corpus has 385,558): not a paper "
                                     "this app can index")
                if len(text) > max_page_chars:
                    pages.append("")
                    dropped.append(f"page {number} left out: {len(text):,} characters of text on one page "
                                   f"(more than {max_page_chars:,})")
                    continue
                pages.append(text)
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        reason = "encrypted" if encrypted else "corrupt PDF"  # e.g. AES needs the cryptography package
        raise ParseError(f"{path}: {reason} ({type(exc).__name__}: {exc})") from exc
    if not pages:
        raise ParseError(f"{path}: PDF has no pages")
    if sum(len(p.strip()) for p in pages) < max(200, 20 * (len(pages) - len(dropped))):
        raise ParseError(f"{path}: no extractable text (scanned?)" + "".join(f"; {d}" for d in dropped))
    return PageText(pages, dropped)


def _content_size(page) -> int:
    contents = page.get_contents()
    return len(contents.get_data()) if contents is not None else 0


def _why(exc: Exception) -> str:
    """A page's failure in a few words: a bomb names the limit it hit."""
    if isinstance(exc, LimitReachedError):
        return f"a stream on it inflates past {STREAM_LIMIT_BYTES:,} bytes ({exc})"
    if isinstance(exc, RecursionError):
        return "its drawing refers to itself (a loop)"
    return f"unreadable ({type(exc).__name__}: {str(exc)[:120]})"


def _page_text(page) -> str:
    """The page's text without the text inside its figures. Figures made with plotting tools are form
    XObjects full of tick labels and legends: noise for a reader, and 40% of pypdf's time over the corpus
    (67.4 -> 40.0 s for the 53 papers, pages drawn wholly as forms read again included)."""
    with pypdf.apply_configuration(xform_maximum_invocations_per_extraction=0):
        text = page.extract_text() or ""
    if len(text.strip()) < FORM_PAGE_MIN_CHARS:
        text = page.extract_text() or ""
    return text


# ---------------------------------------------------------------- cleaning
_SPACES = re.compile(r"[ \t\r\f\v]+")
_DIGITS = re.compile(r"\d+")
# Possessive quantifiers and the look-behind keep this linear: with a plain `([A-Za-z]+)-` every start
# inside a long word re-scanned the rest of it (a 40,000-letter word took 18.5 s, 1,000,000 letters hours).
_HYPHEN_BREAK = re.compile(r"(?<![A-Za-z])([A-Za-z]++)-\n([a-z][A-Za-z]*+)(-?)")
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


def _page_lines(raw: str) -> list[str]:
    lines = (_SPACES.sub(" ", line).strip() for line in normalize_text(raw).split("\n"))
    return [line for line in lines if line]


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Header/footer patterns: top/bottom lines (digits as #) that recur on many pages."""
    if len(pages) < 3:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({_DIGITS.sub("#", line) for line in lines[:2] + lines[-2:]})
    need = max(3, int(0.3 * len(pages)))
    # A header alternates between odd and even pages, so 30% of pages is already a lot.
    return {key for key, n in counts.items() if n >= need and len(key) <= 120}


def _strip_running(lines: list[str], running: set[str]) -> list[str]:
    def is_running(line: str) -> bool:
        return _DIGITS.sub("#", line) in running

    start, end = 0, len(lines)
    while start < min(2, end) and is_running(lines[start]):
        start += 1
    while end > max(start, len(lines) - 2) and is_running(lines[end - 1]):
        end -= 1
    return lines[start:end]


# Prefixes that form compounds (self-attention, non-linear): keep the hyphen when the paper
# itself never settles the spelling.
_COMPOUND_HEADS = {"self", "non", "cross", "semi", "intra", "state", "well", "low", "high"}


def _vocabulary(pages: list[list[str]]) -> Counter[str]:
    words: Counter[str] = Counter()
    for lines in pages:
        for line in lines:
            words.update(w.lower() for w in _WORD.findall(line))
    return words


def _dehyphenate(page: str, vocab: Counter[str]) -> str:
    """Join `trans-\\nformer` into `transformer`, but keep `self-\\nattention` as `self-attention`.

    The paper's own vocabulary decides: whichever form it uses elsewhere wins; an unseen word is
    joined (TeX breaks words far more often than it breaks at a compound's hyphen).
    """

    def join(m: re.Match[str]) -> str:
        head, tail, chained = m.group(1), m.group(2), m.group(3)
        if chained:  # English-\nto-German: a compound chain, never a broken word
            return f"{head}-{tail}-"
        hyphened, joined = vocab[f"{head}-{tail}".lower()], vocab[(head + tail).lower()]
        if hyphened > joined or (hyphened == joined == 0 and head.lower() in _COMPOUND_HEADS):
            return f"{head}-{tail}"
        return head + tail

    return _HYPHEN_BREAK.sub(join, page)


# ---------------------------------------------------------------- sections
_KNOWN = {
    "abstract", "introduction", "background", "related work", "related works", "conclusion", "conclusions",
    "discussion", "acknowledgements", "acknowledgments", "acknowledgement", "acknowledgment", "appendix",
    "appendices", "limitations", "broader impact", "broader impacts", "ethics statement", "method", "methods",
    "experiments", "results", "future work", "conclusion and future work", "conclusions and future work",
    "author contributions", "contributions", "supplementary material", "references", "bibliography",
}
_NUMBERED = re.compile(r"(?P<num>\d{1,2}(?:\.\d{1,2}){0,3})(?P<dot>\.)?\s+(?P<title>[A-Z][^\n]{1,90})")
_LETTERED = re.compile(r"(?P<num>[A-H](?:\.\d{1,2}){0,3})(?P<dot>\.)?\s+(?P<title>[A-Z][^\n]{1,90})")
_REFERENCES = re.compile(r"(?:\d{1,2}\.?\s+)?(?:References|REFERENCES|Bibliography|BIBLIOGRAPHY)")
_APPENDIX_START = re.compile(r"(?:Appendix|APPENDIX|Appendices|APPENDICES|Supplementary|SUPPLEMENTARY)\b[^\n]{0,80}|A\.?(?:1\.?)?\s+[A-Z][^,\n]{1,90}")
_ABBREVIATIONS = re.compile(r"\b(?:vs|e\.g|i\.e|et al|cf)\. ")
# A heading rarely ends on these; figure labels and headings broken over two lines often do.
_DANGLING = {"for", "of", "and", "the", "to", "in", "with", "a", "an", "on", "by", "or", "from", "via"}


def _looks_like_title(title: str) -> bool:
    words = title.split()
    if not 1 <= len(words) <= 12 or title[-1] in ".,;:" or title.count(",") > 3:
        return False
    if ". " in _ABBREVIATIONS.sub("", title) or words[-1].lower() in _DANGLING:
        return False
    if len(words) > 1 and words[-1].isdigit():  # a table-of-contents line: "1 Introduction 3"
        return False
    if re.match(r"(?:Table|Figure|Fig\.)\b", title):
        return False
    letters = sum(c.isalpha() for c in title)
    return letters >= 3 and letters >= 0.6 * len(title.replace(" ", ""))


def _number_key(num: str) -> tuple[int, ...]:
    return tuple(ord(p) - ord("A") + 1000 if p.isalpha() else int(p) for p in num.split("."))


def _plausible_next(key: tuple[int, ...], last: tuple[int, ...] | None) -> bool:
    """Section numbers move forward by one step: after 3.2 come 3.2.1, 3.3 or 4 (not 17 or 2.1)."""
    if last is None:
        return key[0] in (1, 1000) or len(key) == 1 and key[0] <= 2
    for depth in range(min(len(key), len(last) + 1)):
        prefix_same = key[:depth] == last[:depth]
        if prefix_same and depth < len(last) and key[depth] == last[depth] + 1 and all(k == 1 for k in key[depth + 1 :]):
            return True
    return len(key) == len(last) + 1 and key[:-1] == last and key[-1] == 1


def _find_sections(text: str, page_of: list[int], min_refs_at: int) -> tuple[list[Section], int | None]:
    sections: list[Section] = []
    references_start: int | None = None
    last_key: tuple[int, ...] | None = None
    dotted_top: bool | None = None  # "1. Introduction" or "1 Introduction": a paper keeps one style
    in_appendix = False
    offset = 0
    for line in text.split("\n"):
        start, offset = offset, offset + len(line) + 1
        title: str | None = None
        if references_start is None and start >= min_refs_at and _REFERENCES.fullmatch(line):
            references_start, title = start, REFERENCES_TITLE
        elif references_start is not None and not in_appendix:
            if _APPENDIX_START.fullmatch(line) and _looks_like_title(line.split(None, 1)[-1]):
                in_appendix, title = True, line
                if m := _LETTERED.fullmatch(line):
                    last_key = _number_key(m.group("num"))
        elif line.rstrip(":").lower() in _KNOWN:
            title = line.rstrip(":")
        elif (m := (_LETTERED if in_appendix else _NUMBERED).fullmatch(line)) and _looks_like_title(m.group("title")):
            key, dotted = _number_key(m.group("num")), bool(m.group("dot"))
            same_style = len(key) > 1 or dotted_top is None or dotted == dotted_top
            if same_style and _plausible_next(key, last_key):
                title, last_key = line, key
                if len(key) == 1 and not in_appendix:
                    dotted_top = dotted
        if title is not None:
            sections.append(Section(title=title, page_start=page_of[start], char_start=start))
    return sections, references_start


# ---------------------------------------------------------------- entry point
def parse_pdf(path: Path, arxiv_id: str, version: int | None = None, *, max_chars: int = MAX_PAPER_CHARS,
              max_page_chars: int = MAX_PAGE_CHARS) -> ParsedPaper:
    """Read a PDF page by page into cleaned text with sections, references and page offsets; pages that
    cannot be read are left out and named in `dropped_pages`. Linear in the text's size."""
    path = Path(path)
    raw_pages, dropped = _read_pages(path, max_chars, max_page_chars)
    raw_pages = resolve_private_use(raw_pages)  # ligature glyphs of fonts without a Unicode map
    line_pages = [_page_lines(p) for p in raw_pages]
    running = _running_lines(line_pages)
    line_pages = [_strip_running(lines, running) for lines in line_pages]
    vocab = _vocabulary(line_pages)
    texts = [_dehyphenate("\n".join(lines), vocab) for lines in line_pages]
    page_offsets: list[int] = []
    page_of: list[int] = []
    for number, page in enumerate(texts, start=1):
        page_offsets.append(len(page_of))
        page_of.extend([number] * (len(page) + 1))  # +1: the newline that ends the page
    text = "\n".join(texts)
    sections, references_start = _find_sections(text, page_of, min_refs_at=int(0.15 * len(text)))
    return ParsedPaper(
        arxiv_id=arxiv_id, version=version, text=text, page_offsets=tuple(page_offsets),
        sections=tuple(sections), references_start=references_start, dropped_pages=tuple(dropped),
    )
