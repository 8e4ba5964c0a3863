"""Reading lists and arXiv ids, on the real seed files."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sources import ArxivRef, BadSource, extract_refs, parse_ref, read_sources

SEEDS = sorted(Path("/work/shared/seeds").glob("*.txt"))


def test_seed_files_give_92_distinct_ids() -> None:
    listing = read_sources(str(p) for p in SEEDS)
    assert len(SEEDS) == 4
    assert len(listing.refs) == 92
    assert len({r.arxiv_id for r in listing.refs}) == 92
    # One seed is a syllabus with no arXiv links at all: it is reported, not silently dropped.
    assert listing.errors == [f"no arXiv ids found in {SEEDS[0]}"]
    assert ArxivRef(arxiv_id="2009.14794", version=4) in listing.refs  # the one versioned link


@pytest.mark.parametrize(
    ("text", "arxiv_id", "version"),
    [
        ("1706.03762", "1706.03762", None),
        (" arXiv:1706.03762v7 ", "1706.03762", 7),
        ("https://arxiv.org/abs/1706.03762", "1706.03762", None),
        ("http://arxiv.org/abs/1706.03762v2", "1706.03762", 2),
        ("https://arxiv.org/pdf/2307.09288.pdf", "2307.09288", None),
        ("https://arxiv.org/pdf/2307.09288v2.pdf", "2307.09288", 2),
        ("https://export.arxiv.org/abs/2305.13245v3", "2305.13245", 3),
        ("https://www.arxiv.org/html/2305.13245v3", "2305.13245", 3),
        ("arxiv.org/abs/1706.03762/", "1706.03762", None),
        ("1412.6980", "1412.6980", None),
        ("hep-th/9901001", "hep-th/9901001", None),
        ("math.GT/0309136v2", "math.GT/0309136", 2),
        ("https://arxiv.org/abs/quant-ph/0201082v1", "quant-ph/0201082", 1),
    ],
)
def test_parse_ref_forms(text: str, arxiv_id: str, version: int | None) -> None:
    assert parse_ref(text) == ArxivRef(arxiv_id=arxiv_id, version=version)


@pytest.mark.parametrize(
    "text",
    ["", "../../etc/passwd", "1706.0376", "1501.0001", "2013.12345", "1706.03762v0", "hep-th/99010011",
     "https://arxiv.org/abs/../../etc/passwd", "https://example.org/abs/1706.03762", "1706.03762; rm -rf /",
     "attention is all you need"],
)
def test_parse_ref_rejects_with_a_reason(text: str) -> None:
    with pytest.raises(BadSource, match="arXiv|empty"):
        parse_ref(text)


def test_extract_refs_only_takes_marked_ids() -> None:
    text = (
        "See arXiv:1706.03762 and [paper](https://arxiv.org/abs/1706.03762v3). In 2017.05, pages 1234.5678, "
        "doi:10.1145/3292.50012, version 2304.13712 (bare, unmarked); arxiv.org/abs/2304.137121 is too long. "
        "Old: arXiv:hep-th/9901001, https://arxiv.org/pdf/2005.14165]."
    )
    refs = extract_refs(text)
    assert [str(r) for r in refs] == ["1706.03762v3", "hep-th/9901001", "2005.14165"]


def test_read_sources_mixes_items_and_reports_errors(tmp_path: Path) -> None:
    empty = tmp_path / "notes.md"
    empty.write_text("# Notes\nNothing about 2023 or 1234.5678 here.\n")
    listing_file = tmp_path / "list.md"
    listing_file.write_text("- https://arxiv.org/abs/2101.03961\n- arXiv:1706.03762v5\n")
    listing = read_sources(["1706.03762", str(listing_file), str(empty), "1706.0376", str(tmp_path)])
    assert [str(r) for r in listing.refs] == ["1706.03762v5", "2101.03961"]
    assert listing.errors[0] == f"no arXiv ids found in {empty}"
    assert listing.errors[1].startswith("not an arXiv id: '1706.0376'") and "no such file" in listing.errors[1]
    assert listing.errors[2] == f"{tmp_path} is not a file"
