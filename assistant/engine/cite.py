"""Citations of summaries resolved to the leaf passages under them (RAPTOR's collapsed mode), so every
citation a reader sees has a page to open."""
from __future__ import annotations


from foundation.text import best_quote, split_sentences
from foundation.types import Answer, Citation

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
