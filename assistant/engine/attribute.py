"""The attribute step: which quote a written line is checked against and cited to.

The small model omits markers and miscounts the list ("[3] In BIGBIRD-ETC model, ..." copied from quote 4), so
a marker is kept only when the quotes it names hold the line's words; otherwise the line goes to the quote that
clearly holds them, or to none.
"""
from __future__ import annotations

from typing import Sequence

from foundation.text import overlap
from foundation.types import Quote

ALIGN_MIN = 0.6  # a line without a marker is attributed to the quote holding this share of its words
COPIED_MIN = 0.9  # a line holding this share of another quote's words was copied from that quote


def attribute(text: str, cited: list[int], quotes: Sequence[Quote]) -> list[int]:
    """The quote numbers a line is checked against: its own markers when their quotes hold its words, else the
    quote it was copied from, else [] (a line nothing holds)."""
    if not quotes:
        return []
    best = max(quotes, key=lambda q: overlap(text, q.text))
    best_share = overlap(text, best.text)
    if not cited:
        return [best.n] if best_share >= ALIGN_MIN else []
    held = overlap(text, " ".join(quotes[n - 1].text for n in cited))
    if best_share >= COPIED_MIN and held < ALIGN_MIN:
        return [best.n]
    return cited
