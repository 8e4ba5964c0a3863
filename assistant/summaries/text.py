"""Pure text helpers for LLM summaries: strip labels and loops from a reply, cap a runaway one, split
oversized input at sentences, and the extractive fallback when the model fails twice."""
from __future__ import annotations

import re
from typing import Callable, Sequence

from foundation.types import Chunk

_SENT = re.compile(r"(?<=[.!?])\s+")


def clean_summary(text: str) -> str:
    """Strip labels and repeated sentences (small models loop)."""
    text = re.sub(r"^\s*(\*\*)?(summary|paper summary|topic summary)(\*\*)?\s*:\s*", "", text.strip(), flags=re.I)
    seen: set[str] = set()
    kept = []
    for s in _SENT.split(" ".join(text.split())):
        key = s.lower().strip()
        if key and key not in seen:
            seen.add(key)
            kept.append(s)
    return " ".join(kept).strip()


def cut_to_sentence(text: str) -> str:
    """A reply cut off at the token cap, ended at its last full sentence (or kept whole if it has none)."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[:ends[-1]].strip() if ends and ends[-1] > len(text) // 3 else text.strip()


def cap_reply(text: str, cap_tokens: int) -> str:
    """A runaway reply made usable: cut where it starts repeating itself, then at ~cap tokens, then at
    the last full sentence."""
    words = text.split()
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - 5):
        gram = tuple(w.lower() for w in words[i:i + 6])
        if gram in seen:
            words = words[:i]
            break
        seen.add(gram)
    words = words[:max(10, int(cap_tokens * 0.75))]
    return cut_to_sentence(" ".join(words))


def looks_runaway(text: str) -> bool:
    """Degenerate output: the same few words over and over."""
    words = text.lower().split()
    if len(words) < 40:
        return False
    grams = [" ".join(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(set(grams)) < 0.5 * len(grams)


def split_text(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Sentence-aligned pieces of a text whose token counts fit the budget (no text is dropped)."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for sent in _SENT.split(text):
        t = count(sent)
        if current and used + t > budget:
            pieces.append(" ".join(current))
            current, used = [], 0
        if t > budget:  # one enormous "sentence": cut by words
            words = sent.split()
            step = max(1, int(len(words) * budget / t))
            pieces.extend(" ".join(words[i:i + step]) for i in range(0, len(words), step))
            continue
        current.append(sent)
        used += t
    if current:
        pieces.append(" ".join(current))
    return pieces


def extractive_summary(children: Sequence[Chunk], cap: int, count: Callable[[str], int]) -> str:
    """First sentences of the children up to the cap: a faithful stand-in when the model fails twice."""
    out, used = [], 0
    for c in children:
        first = _SENT.split(" ".join(c.text.split()))[0]
        t = count(first)
        if out and used + t > cap:
            break
        out.append(first)
        used += t
    return " ".join(out)

