"""Hard near-miss pairs for checking a support judge: a claim beside text that almost, but does not, state it.

- neighbour: the claim against the passage next to its evidence in the same section (same topic and
  words, other facts);
- number: the claim with one number changed, against its own evidence;
- name: the claim with one name or term swapped for another the corpus uses, against its own evidence.
Used by the eval's judge-check (eval/judge.py) and by the app checker's calibration (bench/support.py).
"""
from __future__ import annotations

import random
import re
from typing import Sequence

from foundation.text import NUMBER, names_in, squash
from eval.matching import evidence_hit

KINDS = ("neighbour", "number", "name")


def change_number(claim: str, rng: random.Random) -> str | None:
    """The claim with one number (two or more digits, or a decimal) replaced by a plausible other value."""
    found = [m for m in NUMBER.finditer(claim) if len(re.sub(r"[.,]", "", m.group())) >= 2 or "." in m.group()]
    if not found:
        return None
    m = rng.choice(found)
    old = m.group()
    digits = old.replace(",", "")
    try:
        value = float(digits)
    except ValueError:
        return None
    factor = rng.choice((0.5, 2.0, 3.0, 0.25, 1.5))
    new_value = value * factor
    new = f"{new_value:.{len(digits.split('.')[1])}f}" if "." in digits else str(int(round(new_value)))
    if new == digits:
        new = str(int(value) + 7)
    return claim[:m.start()] + new + claim[m.end():]


def change_name(claim: str, pool: Sequence[str], rng: random.Random) -> str | None:
    """The claim with one of its names/terms replaced by another name from `pool` it does not contain."""
    mine = sorted(names_in(claim), key=len, reverse=True)
    others = [p for p in pool if p.lower() not in claim.lower()]
    for name in mine:
        m = re.search(re.escape(name), claim, re.I)
        if m and others:
            return claim[:m.start()] + rng.choice(others) + claim[m.end():]
    return None


def neighbour_text(store, evidence: str, arxiv_id: str | None) -> str | None:
    """The passage beside the one holding `evidence` (same paper, reading order), without the evidence."""
    if not arxiv_id:
        return None
    chunks = store.chunks_of(arxiv_id, 0)
    for i, chunk in enumerate(chunks):
        if evidence_hit(chunk.text, evidence):
            for j in (i + 2, i - 2, i + 3, i - 3):  # two away: consecutive chunks overlap by 40 tokens
                if 0 <= j < len(chunks) and chunks[j].section == chunk.section \
                        and not evidence_hit(chunks[j].text, evidence):
                    return squash(chunks[j].text)
            return None
    return None


def name_pool(texts: Sequence[str]) -> list[str]:
    """Names and terms used in these texts (the swaps stay within the corpus's own vocabulary)."""
    pool: dict[str, None] = {}
    for text in texts:
        for match in re.finditer(r"\b[A-Z][A-Za-z0-9-]{2,}\b", text):
            word = match.group()
            if any(c.isdigit() for c in word) or sum(c.isupper() for c in word) >= 2:
                pool.setdefault(word, None)
    return list(pool)
