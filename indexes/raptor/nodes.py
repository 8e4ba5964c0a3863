"""What a summary node is: its level, its stable id, and the Chunk it is stored as.

Summary nodes are ordinary `Chunk`s with `level > 0` and `children` ids. Levels: 0 = passage; 1..8 =
paper-tree layers (the paper summary is the top one); 9 = corpus topics (arxiv_id "_corpus", so a
`papers=` filter leaves them out).
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Literal, Sequence

from foundation.types import Chunk

TOPIC_LEVEL = 9
MAX_TREE_LEVEL = TOPIC_LEVEL - 1
CORPUS_ID = "_corpus"

NodeKind = Literal["cluster", "paper", "topic", "part"]


def node_id(arxiv_id: str, level: int, children: Sequence[str]) -> str:
    digest = hashlib.sha1("|".join(children).encode()).hexdigest()[:12]
    return f"{arxiv_id.replace('/', '_')}-L{level}-{digest}"


def hash_ids(ids: Iterable[str]) -> str:
    return hashlib.sha1("|".join(ids).encode()).hexdigest()


def _sections(c: Chunk) -> list[str]:
    if c.level == 0:
        return [c.section] if c.section else []
    if ": " in c.section:
        return [s for s in c.section.split(": ", 1)[1].split("; ") if s]
    return []


def summary_node(arxiv_id: str, level: int, kind: NodeKind, children: Sequence[Chunk], title: str, text: str,
                 n_tokens: int) -> Chunk:
    """The Chunk a summary of `children` is stored as: its id from the children's ids, a section that says
    what it summarises, the children's page and character span, and only real children (a split input's
    pseudo-parts, ids with '#', are not stored)."""
    real = [c for c in children if "#" not in c.id] or list(children)
    if kind == "topic":
        titles = [c.section.removeprefix("Paper summary: ") for c in children]
        section = "Topic: " + "; ".join(t[:40] for t in titles)
        pages = (0, 0)
        chars = (0, 0)
    else:
        sections = list(dict.fromkeys(s for c in children for s in _sections(c)))
        label = "Paper summary" if kind == "paper" else f"Summary (level {level})"
        section = f"{label}: {title}" if kind == "paper" else f"{label}: {'; '.join(sections)}"
        pages = (min(c.page_start for c in children), max(c.page_end for c in children))
        chars = (min(c.char_start for c in children), max(c.char_end for c in children))
    return Chunk(id=node_id(arxiv_id, level, [c.id for c in children]), arxiv_id=arxiv_id,
                 version=children[0].version if kind != "topic" else None, section=section[:300],
                 page_start=pages[0], page_end=pages[1], char_start=chars[0], char_end=chars[1], text=text,
                 n_tokens=n_tokens, level=level, children=tuple(c.id for c in real))
