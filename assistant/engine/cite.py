"""Turn a model's [n] markers into checked citations; align sentences with passages in code.

Small local models omit markers or cite the wrong passage (FACTS.md), so markers are validated
against the passages actually shown, and a sentence without one is aligned to the passage
whose words it shares most.
"""
from __future__ import annotations

from typing import Sequence

from foundation.text import (MARKER, best_quote, content_words, markers_in, overlap, place_markers, restates,
                                 split_sentences, strip_markers)
from foundation.types import Answer, Citation, Hit

# A sentence is attributed to a passage it never cited only if it shares this share of content words.
ALIGN_MIN_OVERLAP = 0.5


def drop_restatements(text: str) -> str:
    """Greedy decoding by small models loops: keep the first of sentences that say the same thing."""
    kept, seen = [], []
    for sentence in split_sentences(text):
        words = content_words(MARKER.sub("", sentence))
        if any(restates(words, earlier) for earlier in seen):
            continue
        seen.append(words)
        kept.append(sentence)
    return " ".join(kept)


def attach_citations(text: str, passages: Sequence[Hit]) -> tuple[str, list[Citation]]:
    """Validate markers, drop ones that point at nothing shown, add one where alignment is clear.

    Returns the cleaned text and the citations in marker order.
    """
    out_sentences: list[str] = []
    cited: dict[int, Citation] = {}
    for sentence in split_sentences(text):
        valid = [n for n in dict.fromkeys(markers_in(sentence)) if 1 <= n <= len(passages)]
        bare = strip_markers(sentence)
        if not valid and passages:
            scores = [overlap(bare, h.chunk.text) for h in passages]
            best = max(range(len(passages)), key=scores.__getitem__)
            if scores[best] >= ALIGN_MIN_OVERLAP:
                valid = [best + 1]
        for n in valid:
            if n not in cited:
                cited[n] = citation_for(n, passages[n - 1], bare)
        if valid:
            bare = place_markers(bare, "".join(f"[{n}]" for n in valid), end="")
        out_sentences.append(bare)
    return " ".join(out_sentences), sorted(cited.values(), key=lambda c: c.n)


def citation_for(n: int, hit: Hit, sentence: str) -> Citation:
    c = hit.chunk
    paper = hit.paper
    return Citation(n=n, chunk_id=c.id, arxiv_id=c.arxiv_id, title=hit.paper_title, section=c.section,
                    page_start=c.page_start, page_end=c.page_end, quote=best_quote(sentence, c.text),
                    authors=paper.authors if paper else (), year=paper.year if paper else None)


def leaf_citations(answer: Answer, library) -> Answer:
    """An answer over the collapsed tree may cite a summary; a reader needs a page to open, so each such
    citation is replaced by the leaf under that summary that best supports the citing sentence."""
    if not answer.citations:
        return answer
    chunks = library.store.chunks([c.chunk_id for c in answer.citations])
    if not any(ch.level > 0 for ch in chunks.values()):
        return answer
    from indexes.raptor import resolve_leaf

    sentences = split_sentences(answer.text)
    resolved: list[Citation] = []
    for c in answer.citations:
        chunk = chunks.get(c.chunk_id)
        if chunk is None or chunk.level == 0:
            resolved.append(c)
            continue
        sentence = next((s for s in sentences if f"[{c.n}]" in s), c.quote or chunk.text[:300])
        leaf = resolve_leaf(library, chunk, library.embedder.embed([sentence])[0])
        if leaf is None:  # a summary whose leaves are gone: keep the summary's own citation
            resolved.append(c)
            continue
        resolved.append(c.model_copy(update={
            "chunk_id": leaf.id, "arxiv_id": leaf.arxiv_id, "section": leaf.section, "page_start": leaf.page_start,
            "page_end": leaf.page_end, "quote": best_quote(sentence, leaf.text)}))
    return answer.model_copy(update={"citations": tuple(resolved)})
