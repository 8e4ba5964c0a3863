"""Writing a draft paragraph by paragraph, every sentence checked against the paper text it cites.

The model drafts one paragraph from a few sources at a time (a small model writes a good 80 words, not
a good 250); each sentence's citation is resolved to the leaf passage under the cited source (a summary
node is the model's own words, the leaf is the paper's), and the sentence is kept only if the support
checker (engine/support.py) finds it in that passage. Paragraphs continue over the next sources until
the kept text reaches the length asked, or the material runs out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from foundation.prompts import load_prompt
from foundation.text import content_words, markers_in, overlap, restates, split_sentences, strip_markers
from foundation.types import Chunk, Hit, ProgressEvent
from assistant.engine.passages import sanitize_passage
from assistant.engine.support import SupportChecker
from assistant.llm.protocol import LLM, LLMError
from indexes.raptor import TreeLibrary, resolve_leaf

MIN_ALIGN = 0.25          # a sentence without a usable marker goes to the source holding this share of its words
SOURCES_PER_PARAGRAPH = 4
PARAGRAPH_WORDS = (60, 110)
LABEL = re.compile(r"^[A-Z][a-z]+:\s+(?=[A-Z])")  # "Numbers: The paper ..." echoes the prompt's words


@dataclass
class Written:
    sentences: list[tuple[str, Chunk]] = field(default_factory=list)  # kept sentence, the leaf it cites
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    support: list[float | None] = field(default_factory=list)

    @property
    def words(self) -> int:
        return sum(len(s.split()) for s, _ in self.sentences)


class DraftWriter:
    def __init__(self, llm: LLM, checker: SupportChecker, library: TreeLibrary, prompts_dir: Path,
                 progress: Callable[[ProgressEvent], None] = lambda e: None):
        self.llm, self.checker, self.library, self.prompts_dir, self.progress = llm, checker, library, prompts_dir, progress

    def write(self, sources: Sequence[Hit], subject: str, style: str, words: int) -> Written:
        out = Written()
        groups = [list(sources[i:i + SOURCES_PER_PARAGRAPH]) for i in range(0, len(sources), SOURCES_PER_PARAGRAPH)]
        for n, group in enumerate(groups):
            missing = words - out.words
            if missing <= 0.1 * words:
                break
            target = max(PARAGRAPH_WORDS[0], min(PARAGRAPH_WORDS[1], missing // max(1, len(groups) - n) + 20))
            self.progress(ProgressEvent(stage="generate", message=f"paragraph {n + 1}: {out.words}/{words} words",
                                        done=out.words, total=words))
            raw = self._paragraph(group, subject, style, target)
            out.raw.append(raw)
            self._check(raw, group, out)
        if out.words < 0.9 * words:
            out.notes.append(f"{out.words} of {words} words: the sources gave no more supported sentences")
        return out

    def _paragraph(self, group: Sequence[Hit], subject: str, style: str, words: int) -> str:
        prompt = load_prompt("draft", self.prompts_dir).render(sources=format_sources(group), style=style,
                                                               subject=subject, length=words)
        try:
            return self.llm.complete([{"role": "user", "content": prompt}], max_tokens=int(words * 1.8) + 40,
                                     temperature=0.0)
        except LLMError as exc:
            if "empty reply" not in str(exc):
                raise
            return ""

    def _check(self, raw: str, group: Sequence[Hit], out: Written) -> None:
        candidates = []
        for sentence in split_sentences(raw):
            if sentence.lstrip().startswith("#") or re.fullmatch(r"[\W_]*", sentence):
                continue
            bare = LABEL.sub("", re.sub(r"^[-*•]\s+", "", strip_markers(sentence)))
            if bare.rstrip()[-1:] not in ".!?":  # cut off by the token limit ("... across the")
                out.dropped.append(bare)
                continue
            words = content_words(bare)
            earlier = [s for s, _ in out.sentences] + [b for b, _ in candidates]
            if len(words) < 3 or any(restates(words, content_words(s)) for s in earlier):
                continue  # a fragment, or the model repeating itself
            cited = [n for n in dict.fromkeys(markers_in(sentence)) if 1 <= n <= len(group)]
            if not cited or all(overlap(bare, group[n - 1].chunk.text) < 0.1 for n in cited):
                best = max(range(len(group)), key=lambda i: overlap(bare, group[i].chunk.text))
                cited = [best + 1] if overlap(bare, group[best].chunk.text) >= MIN_ALIGN else []
            if not cited:
                out.dropped.append(bare)
                continue
            candidates.append((bare, group[cited[0] - 1]))
        if not candidates:
            return
        vectors = self.library.embedder.embed([b for b, _ in candidates])
        checks = []
        for (bare, hit), vector in zip(candidates, vectors):
            leaf = resolve_leaf(self.library, hit.chunk, vector)
            if leaf is None:
                out.dropped.append(bare)
                continue
            passage = sanitize_passage(" ".join(leaf.text.split()))[0]
            checks.append((bare, leaf, self.checker.submit(bare, passage, hit.paper_title)))
        for bare, leaf, future in checks:
            result = future.result()
            if result.supported:
                out.sentences.append((bare, leaf))
                out.support.append(result.score)
            else:
                out.dropped.append(bare)


def format_sources(hits: Sequence[Hit]) -> str:
    blocks = []
    for i, h in enumerate(hits, 1):
        c = h.chunk
        where = c.section if c.level == 0 else ("summary" if c.level < 9 else "topic summary")
        text = sanitize_passage(c.text.strip())[0]
        blocks.append(f"[{i}] {h.paper_title or c.arxiv_id} ({where}, {c.pages_label}):\n{text}")
    return "\n\n".join(blocks)
