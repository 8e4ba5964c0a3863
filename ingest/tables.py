"""ParsedPaper -> Tables: the regions beside "Table N:" captions, read into rows that can be quoted alone.

pypdf gives a table as lines of cells separated by spaces, next to its caption on the same page (above it
in every corpus paper but one style, where the caption comes first). A row is a label and a run of value
cells at the end of the line ("BERTBASE 84.6/83.4 71.2 ... 79.6"); the lines above the first row are the
header. Each row is written as a sentence that names the table, its caption's gist, the row's label and
each value with its column header:
    Table 7 (Ablation using BERT with a feature-based approach on CoNLL-2003 NER): First Layer
    (Embeddings): Dev F1 91.0.
Headers are aligned to cells only by rules that hold on the corpus (one header token per value, a label
column first, pairs such as "Dev F1 Test F1", a group line spanning equal blocks, a units line); where
none holds, the row says less: its values in order after the header line, never a guessed pairing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from foundation.types import ParsedPaper
from ingest.table_layout import (
    LABEL_NUMBER,
    MIN_ROWS,
    SCORE,
    SIZE,
    WORD_BREAK,
    Layout,
    cells_of,
    has_digit,
    is_prose,
    is_row,
    layout_of,
    trailing_values,
)

CAPTION = re.compile(r"(?:Table|TABLE)\s*(?P<num>[A-Z]?\d{1,2})(?:\s*(?P<sep>[:.|]|j(?=\s))\s*(?P<rest>.*)|\s+(?P<bare>[A-Z].*)|\s*$)")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_HEADER_LINES = 3
MAX_GIST_WORDS = 16


@dataclass(frozen=True)
class Line:
    text: str   # control characters (glyphs pypdf could not map: "2.4\x02" for "2.4×") dropped
    start: int  # where the line is in the paper's text
    end: int
    page: int


@dataclass(frozen=True)
class TableRow:
    label: str
    cells: tuple[tuple[str, str], ...]  # (column header, value); header "" when not aligned
    head: str                           # "Table 7 (caption gist): First Layer (Embeddings): "
    aligned: bool
    start: int                          # the row's line in the paper's text
    end: int

    @property
    def text(self) -> str:
        """The row as one self-contained sentence."""
        return self.part(0, len(self.cells))

    def part(self, a: int, b: int) -> str:
        """The row with only its cells a..b: a row too long for one passage is written in parts."""
        shown = [f"{h} {v}".strip() for h, v in self.cells[a:b] if not _is_missing(v)]
        return self.head + (", " if self.aligned else " ").join(shown) + "."


@dataclass(frozen=True)
class Table:
    number: str
    caption: str
    gist: str
    page: int
    header: tuple[str, ...]
    aligned: bool
    rows: tuple[TableRow, ...]

    @property
    def name(self) -> str:
        return f"Table {self.number}"


# ---------------------------------------------------------------- regions
def _lines(parsed: ParsedPaper) -> list[Line]:
    out, offset = [], 0
    for text in parsed.text.split("\n"):
        out.append(Line(CONTROL.sub("", text).strip(), offset, offset + len(text), parsed.page_at(offset)))
        offset += len(text) + 1
    return out


def _group_like(text: str) -> bool:
    """A line between rows that names the rows below it ("LLaMA", "Single models on test (as of ...)")."""
    return len(text) < 70 and not text.endswith((".", ",", ";")) and not WORD_BREAK.search(text) and not text[:1].islower()


def _region_above(lines: list[Line], c: int) -> tuple[list[Line], list[Line]]:
    """(header lines, body lines) ending just above the caption at index c."""
    page = lines[c].page
    body: list[int] = []
    j = c - 1
    while j >= 0 and lines[j].page == page and not CAPTION.match(lines[j].text):
        text = lines[j].text
        # a row, or a group line between rows ("Single models on test (as of July 25, 2019)")
        if is_row(text) or (body and j > 0 and is_row(lines[j - 1].text) and _group_like(text)):
            body.append(j)
        else:
            break
        j -= 1
    while body and not is_row(lines[body[-1]].text):
        body.pop()  # the topmost lines are the header's, read below
    if not body:
        return [], []
    header: list[int] = []
    j = body[-1] - 1
    while j >= 0 and len(header) < MAX_HEADER_LINES and lines[j].page == page:
        text = lines[j].text
        if is_prose(text) or CAPTION.match(text) or is_row(text):
            break
        header.append(j)
        j -= 1
    return [lines[i] for i in reversed(header)], [lines[i] for i in reversed(body)]


def _region_below(lines: list[Line], c: int) -> tuple[list[Line], list[Line]]:
    """For a caption written above its table ("Table 1. Model sizes and server configurations."); pypdf
    may put the table at the top of the next page."""
    page = lines[c].page
    j = c + 1
    skipped = 0
    while j < len(lines) and lines[j].page == page and is_prose(lines[j].text) and skipped < 4:
        j, skipped = j + 1, skipped + 1  # the caption's further lines
    header: list[Line] = []
    page = lines[j].page if j < len(lines) and lines[j].page == page + 1 else page
    while j < len(lines) and lines[j].page == page and not is_row(lines[j].text):
        if is_prose(lines[j].text) or CAPTION.match(lines[j].text) or len(header) == MAX_HEADER_LINES:
            return [], []
        header.append(lines[j])
        j += 1
    body: list[Line] = []
    while j < len(lines) and lines[j].page == page:
        text = lines[j].text
        if is_row(text) or (body and j + 1 < len(lines) and is_row(lines[j + 1].text) and _group_like(text)):
            body.append(lines[j])
        else:
            break
        j += 1
    if j < len(lines) and CAPTION.match(lines[j].text):
        return [], []  # these rows sit just above the next caption: they are its table
    return header, body


# ---------------------------------------------------------------- rows
def _gist(caption_lines: list[str]) -> str:
    text = " ".join(caption_lines)
    m = re.search(r"(?<!\bet al)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)\.(?:\s+(?=[^a-z\s])|\s*$)", text)
    text = (text[: m.start()] if m else text).strip().rstrip(".:")
    words = text.split()
    return " ".join(words[:MAX_GIST_WORDS]) + (" ..." if len(words) > MAX_GIST_WORDS else "")


def _is_missing(value: str) -> bool:
    return value in ("-", "–", "—")


def _with_group(label: str, group: str) -> str:
    """"LLaMA" over "7B" reads "LLaMA 7B"; "Published" over "BiDAF+ELMo (Single)" reads
    "BiDAF+ELMo (Single) (Published)"."""
    if not group:
        return label
    if not label:
        return group
    if LABEL_NUMBER.fullmatch(label) or label[:1].islower() or label[:1] in "+-":
        return f"{group} {label}"
    return f"{label} ({group})"


def _rows(prefix: str, header_text: str, layout: Layout | None, body: list[Line]) -> list[TableRow]:
    rows: list[TableRow] = []
    group = layout.group if layout else ""
    for line in body:
        cells = cells_of(line.text)
        run = trailing_values(cells)
        if not run or not any(has_digit(c) for c in cells[len(cells) - run:]):
            words = line.text.split()
            # a text row of a text table ("Learning Rate Decay Linear Linear", "GPUs A100 4×A100") names no group
            text_row = len(set(words)) < len(words) or sum(has_digit(w) for w in words) >= 2
            group = "" if text_row else line.text.rstrip(":").strip()
            continue
        n = min(run, layout.n) if layout else run
        label = " ".join(cells[: len(cells) - n])
        values = cells[len(cells) - n:]
        aligned = bool(layout and layout.columns and run >= layout.n)
        pairs = list(zip(layout.columns, values)) if aligned else [("", v) for v in values]
        if all(_is_missing(v) for _, v in pairs) or any(SCORE.fullmatch(c) for c in label.split()):
            continue  # nothing to say, or two rows run together in one line ("Wq 68.8 69.6 70.5 Wq,Wv 73.4 ...")
        if aligned and layout.label_name and label.isdigit():
            label = f"{layout.label_name} {label}"
        label = _with_group(label, group)
        if not aligned and not label and not header_text:
            continue  # numbers with neither a name nor a header say nothing a reader could check
        head = prefix if aligned or not header_text else f"{prefix} [columns: {header_text}]"
        head = f"{head}: {label}: " if label else f"{head}: "
        rows.append(TableRow(label=label, cells=tuple(pairs), head=head, aligned=aligned, start=line.start,
                             end=line.end))
    return rows


def find_tables(parsed: ParsedPaper) -> list[Table]:
    """Every captioned table whose rows can be read, once per table number, in reading order."""
    lines = _lines(parsed)
    refs_end = _references_end(parsed)
    tables: dict[str, Table] = {}
    for c, line in enumerate(lines):
        m = CAPTION.match(line.text)
        if not m or m.group("num") in tables:
            continue
        if parsed.references_start is not None and parsed.references_start <= line.start < refs_end:
            continue
        if m.group("sep") == "." and not _caption_text(m)[:1].isupper():  # "... shown in Table 6."
            continue
        header, body = _region_above(lines, c)
        if not body:
            header, body = _region_below(lines, c)
        table = _read_table(m.group("num"), lines, c, header, body)
        if table is not None:
            tables[table.number] = table
    return sorted(tables.values(), key=lambda t: t.rows[0].start)


def _read_table(number: str, lines: list[Line], c: int, header: list[Line], body: list[Line]) -> Table | None:
    rows_cells = [cells_of(b.text) for b in body if is_row(b.text)]
    if len(rows_cells) < MIN_ROWS:
        return None
    caption_lines = [_caption_text(CAPTION.match(lines[c].text))]
    for i in range(c + 1, min(c + 4, len(lines))):
        if caption_lines[-1].endswith(".") or lines[i].page != lines[c].page or not is_prose(lines[i].text):
            break
        caption_lines.append(lines[i].text)
    gist = _gist(caption_lines)
    first = body[0].text
    if not header and is_row(first) and all(SIZE.fullmatch(c) or c.isdigit() for c in cells_of(first)):
        header, body, rows_cells = [body[0]], body[1:], rows_cells[1:]  # "7B 13B 33B 65B": the columns' names
        if len(rows_cells) < MIN_ROWS:
            return None
    layout = layout_of([h.text for h in header], rows_cells)
    about = "; ".join([gist or f"page {body[0].page}"] + (layout.context if layout else []))
    prefix = f"Table {number} ({about})"
    rows = _rows(prefix, " / ".join(h.text for h in header), layout, body)
    if len(rows) < MIN_ROWS:
        return None
    return Table(number=number, caption=" ".join(caption_lines).strip(), gist=gist, page=body[0].page,
                 header=tuple(h.text for h in header), aligned=bool(layout and layout.columns), rows=tuple(rows))


def _caption_text(m: re.Match[str]) -> str:
    return m.group("rest") or m.group("bare") or ""


def _references_end(parsed: ParsedPaper) -> int:
    if parsed.references_start is None:
        return 0
    later = [s.char_start for s in parsed.sections if s.char_start > parsed.references_start]
    return min(later) if later else len(parsed.text)
