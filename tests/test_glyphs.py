"""Ligature glyphs from fonts without a Unicode map are spelled out at parse time (ingest/glyphs.py)."""
from __future__ import annotations

import re

from ingest.glyphs import ligature_map, resolve_private_use
from ingest.parse import parse_pdf
from tests.conftest import PAPERS


def test_the_transformer_paper_reads_without_private_use_characters():
    text = parse_pdf(PAPERS / "1706.03762.pdf", "1706.03762").text
    assert not re.search(r"[\ue000-\uf8ff]", text)
    for word in ("significantly", "efficient", "floating", "first"):
        assert word in text, word
    assert "more space-efficient" in text  # the README's sample answer read "more space-efcient" before


def test_each_code_point_takes_the_ligature_that_makes_words_and_the_rest_become_spaces():
    pages = ["signi\ue000cantly more ef\ue000cient, information \ue001ow", "x\ue007h and \uf8f0 brackets"]
    known = frozenset({"significantly", "efficient", "flow"})
    assert ligature_map(pages, known) == {"\ue000": "fi", "\ue001": "fl"}
    assert resolve_private_use(pages, known) == ["significantly more efficient, information flow",
                                                  "x h and   brackets"]
    assert resolve_private_use(["plain text"], known) == ["plain text"]
