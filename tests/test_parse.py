"""parse_pdf on small real papers, and the ways a PDF can be unusable."""
from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pypdf
import pytest

from foundation.types import ParsedPaper
from ingest.parse import ParseError, normalize_text, parse_pdf

PAPERS = Path("/work/shared/papers")
DEV = Path("/work/shared/eval/dev.jsonl")
SMALL = ["1907.11692", "2305.13245", "1706.03762"]  # 210 kB, 256 kB, 940 kB


def flat(s: str) -> str:
    return " ".join(s.split())


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ParsedPaper]:
    folder = tmp_path_factory.mktemp("papers")
    out = {}
    for arxiv_id in SMALL:
        shutil.copy(PAPERS / f"{arxiv_id}.pdf", folder)
        out[arxiv_id] = parse_pdf(folder / f"{arxiv_id}.pdf", arxiv_id, version=1)
    return out


def page_text(paper: ParsedPaper, page: int) -> str:
    ends = [*paper.page_offsets[1:], len(paper.text)]
    return paper.text[paper.page_offsets[page - 1] : ends[page - 1]]


def test_pages_and_offsets(parsed: dict[str, ParsedPaper]) -> None:
    paper = parsed["1706.03762"]
    assert len(paper.page_offsets) == len(pypdf.PdfReader(PAPERS / "1706.03762.pdf").pages) == 15
    assert paper.page_offsets[0] == 0 and list(paper.page_offsets) == sorted(paper.page_offsets)
    assert paper.page_at(paper.text.index("1 Introduction\n")) == 2
    assert paper.page_at(len(paper.text) - 1) == 15


def test_dev_evidence_is_found_on_its_gold_page(parsed: dict[str, ParsedPaper]) -> None:
    checked = 0
    for line in DEV.read_text().splitlines():
        question = json.loads(line)
        if question.get("arxiv_id") not in parsed:
            continue
        paper = parsed[question["arxiv_id"]]
        for evidence, page in zip(question["evidence"], question["pages"]):
            assert flat(normalize_text(evidence)) in flat(page_text(paper, page)), (question["id"], evidence)
            checked += 1
    assert checked >= 3


def test_ligatures_and_odd_characters_are_normalised(parsed: dict[str, ParsedPaper]) -> None:
    raw = "".join(p.extract_text() for p in pypdf.PdfReader(PAPERS / "1907.11692.pdf").pages)
    assert "\ufb01" in raw  # pypdf gives ﬁ here ...
    text = parsed["1907.11692"].text
    assert not re.search("[\ufb00-\ufb06\u00ad]", text)  # ... we give fi
    assert "significant" in text and "fine-tuning" in text
    assert normalize_text("e\ufb03cient \ufb02ow, \U0001d463 = \u210e\u00a0x") == "efficient flow, v = h x"


def test_line_end_hyphenation(parsed: dict[str, ParsedPaper]) -> None:
    text = parsed["1706.03762"].text
    assert "transduction" in text and "transduc-\ntion" not in text  # a word broken by TeX: joined
    assert "surprisingly" in text
    assert "position-wise" in text and "positionwise" not in text  # a compound the paper uses: kept
    assert "English-to-German" in text  # a chain of compounds broken after "English-"


def test_running_headers_and_page_numbers_are_removed(parsed: dict[str, ParsedPaper]) -> None:
    paper = parsed["1706.03762"]
    for page in range(2, 11):
        lines = page_text(paper, page).strip().split("\n")
        assert not lines[-1].strip().isdigit(), (page, lines[-1])  # pypdf ends these pages with "3", "4", ...


def test_sections_are_detected(parsed: dict[str, ParsedPaper]) -> None:
    paper = parsed["1706.03762"]
    titles = [s.title for s in paper.sections]
    for expected in ["Abstract", "1 Introduction", "2 Background", "3 Model Architecture", "3.2 Attention",
                     "3.2.1 Scaled Dot-Product Attention", "4 Why Self-Attention", "7 Conclusion", "References"]:
        assert expected in titles
    starts = [s.char_start for s in paper.sections]
    assert starts == sorted(starts)
    intro = next(s for s in paper.sections if s.title == "1 Introduction")
    assert intro.page_start == 2 and paper.text[intro.char_start:].startswith("1 Introduction\n")


def test_references_start_and_appendix_after_them(parsed: dict[str, ParsedPaper]) -> None:
    paper = parsed["2305.13245"]
    assert paper.references_start is not None
    assert paper.text[paper.references_start :].startswith("References\n")
    assert "Proceedings" in paper.text[paper.references_start :]
    after = [s.title for s in paper.sections if s.char_start > paper.references_start]
    assert after == ["A Training Stability"]  # the appendix, kept as a section of its own


def write_pdf(path: Path, build: Callable[[pypdf.PdfWriter], None]) -> Path:
    writer = pypdf.PdfWriter()
    build(writer)
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def test_unusable_pdfs_raise_parse_error(tmp_path: Path) -> None:
    source = (PAPERS / "2305.13245.pdf").read_bytes()
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(source[: len(source) // 2])
    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_text("These are my notes, saved with the wrong extension.\n" * 10)
    blank = write_pdf(tmp_path / "blank.pdf", lambda w: w.add_blank_page(width=612, height=792))

    def encrypt(writer: pypdf.PdfWriter, user_password: str) -> None:
        writer.append(pypdf.PdfReader(PAPERS / "2305.13245.pdf"))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")

    locked = write_pdf(tmp_path / "locked.pdf", lambda w: encrypt(w, "secret"))
    cases = {truncated: "corrupt PDF", not_pdf: "not a PDF", blank: r"no extractable text \(scanned\?\)",
             locked: "encrypted", tmp_path / "missing.pdf": "cannot read"}
    for path, message in cases.items():
        with pytest.raises(ParseError, match=message):
            parse_pdf(path, "2305.13245")
    # Encrypted with an empty user password (only printing/copying restricted): it opens.
    opened = parse_pdf(write_pdf(tmp_path / "open.pdf", lambda w: encrypt(w, "")), "2305.13245")
    assert "Grouped-query attention" in opened.text


def test_figure_text_is_left_out_and_pages_drawn_as_forms_are_still_read(tmp_path):
    """Plot labels live in form XObjects (2307.08691: ~10% of pypdf's text); 1706.03762 draws every page as a
    form, so a page with almost no text outside forms is read with them."""
    from ingest.parse import _read_pages

    for arxiv_id in ("1706.03762", "2307.08691"):
        shutil.copy(PAPERS / f"{arxiv_id}.pdf", tmp_path / f"{arxiv_id}.pdf")
    whole = parse_pdf(tmp_path / "1706.03762.pdf", "1706.03762")
    assert len(whole.text) > 30_000 and "Scaled Dot-Product Attention" in whole.text
    ours = sum(len(p) for p in _read_pages(tmp_path / "2307.08691.pdf").pages)
    everything = sum(len(p.extract_text() or "") for p in pypdf.PdfReader(tmp_path / "2307.08691.pdf").pages)
    assert ours < 0.95 * everything
