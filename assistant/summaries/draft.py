"""Writers' API: a cited Markdown draft about some papers or a topic.

Material comes from the RAPTOR tree where one exists (paper summary first, then lower layers until a
token budget is filled) and from leaf passages where it does not. Every sentence of the draft carries a
citation: the model's [n] markers are validated, a bare sentence is aligned to the source whose words
it shares, and a sentence that matches no source is dropped (listed in `Draft.dropped`). A citation of
a summary node is resolved to the leaf passage under it that best supports the sentence, so every
reference names a paper, a section and pages.
"""
from __future__ import annotations

import time
from typing import Callable, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field

from foundation.config import Settings
from foundation.text import best_quote, is_prose, place_markers, split_sentences
from foundation.types import Chunk, Citation, Hit, ProgressEvent, bibtex_entry
from assistant.engine.support import SupportChecker
from assistant.llm.protocol import LLM
from assistant.summaries.config import TreeConfig
from assistant.summaries.writer import DraftWriter
from indexes.library import Library
from indexes.raptor import CORPUS_ID, TreeStore, collapsed_search, leaves_of
from indexes.store import Store

LENGTH_WORDS = {"short": 120, "medium": 250, "long": 450}
STYLES = {
    "summary": "a summary",
    "related-work": "a related-work paragraph for a paper",
    "abstract": "an abstract-style overview",
    "notes": "concise study notes in prose",
}
DRAFT_PROMPT = "draft"

Progress = Callable[[ProgressEvent], None]


def _quiet(_: ProgressEvent) -> None:
    pass


class HitMaker(Protocol):
    def to_hits(self, ranked: Sequence[tuple[str, float]], source: str) -> list[Hit]: ...


class DraftSource(Protocol):
    """What a draft needs of the Assistant (assistant.api.Assistant has it): the settings, the library (its
    trees, store and dense index), ranked ids made into hits, and the LLM (a managed server starts on demand)."""

    settings: Settings

    @property
    def library(self) -> Library: ...

    @property
    def retriever(self) -> HitMaker: ...

    def llm(self, progress: Progress = ...) -> LLM: ...


class Draft(BaseModel):
    """A draft for writers: Markdown text with [n] citations, the references they point to, and BibTeX."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    subject: str = Field(description="What the draft is about: the papers' titles or the topic")
    style: str
    length_words: int
    text: str = Field(description="Markdown body; every sentence ends with one or more [n] markers")
    citations: tuple[Citation, ...] = Field(default=(), description="Leaf passages cited, numbered as in text")
    sources: tuple[Hit, ...] = Field(default=(), description="Material shown to the model (summaries and/or passages)")
    tree_papers: tuple[str, ...] = Field(default=(), description="Papers whose material came from their summary tree")
    leaf_papers: tuple[str, ...] = Field(default=(), description="Papers without a tree: leaf passages were used")
    dropped: tuple[str, ...] = Field(default=(), description="Model sentences removed because no source supports them")
    support: tuple[float | None, ...] = Field(default=(), description="Support score of each kept sentence, in order")
    notes: tuple[str, ...] = Field(default=(), description="What the writer could not do (e.g. a draft shorter than asked)")
    extractive: bool = Field(default=False, description="True when the model gave nothing citable and extracts were used")
    model: str = ""
    prompt: str = DRAFT_PROMPT
    timings: dict[str, float] = Field(default_factory=dict)

    @property
    def references(self) -> list[str]:
        return [c.label for c in self.citations]

    @property
    def bibtex(self) -> str:
        seen: dict[str, Citation] = {}
        for c in self.citations:
            seen.setdefault(c.arxiv_id, c)
        return "\n\n".join(bibtex_entry(c) for c in seen.values())

    def to_markdown(self) -> str:
        lines = [f"# {self.subject}", "", self.text, "", "## References", ""]
        lines += [f"- {ref}" for ref in self.references]
        lines += ["", "## BibTeX", "", "```bibtex", self.bibtex, "```"]
        return "\n".join(lines).rstrip() + "\n"


def length_in_words(length: str | int) -> int:
    if isinstance(length, int) or str(length).isdigit():
        return max(30, min(int(length), 1500))
    if length not in LENGTH_WORDS:
        raise ValueError(f"length must be a number of words or one of {', '.join(LENGTH_WORDS)}")
    return LENGTH_WORDS[length]


def summarize(assistant: DraftSource, papers: Sequence[str] | None = None, topic: str | None = None, length: str | int = "medium",
              style: str = "summary", progress: Progress = _quiet) -> Draft:
    if bool(papers) == bool(topic):
        raise ValueError("give either papers=[...] or topic=\"...\"")
    words = length_in_words(length)
    style_text = STYLES.get(style, style)
    lib = assistant.library
    timings: dict[str, float] = {}
    start = time.perf_counter()
    tree = TreeStore(lib)
    try:
        trees = tree.tree_papers()
        max_tokens = int(words * 1.7) + 40
        llm = assistant.llm(progress)
        cfg = TreeConfig.from_settings(assistant.settings, llm)
        budget = max(300, int((cfg.context_tokens - max_tokens - 250) * 0.8))
        meta = lib.paper_map()
        if papers:
            missing = [p for p in papers if p not in meta]
            if missing:
                raise ValueError(f"not in the library: {', '.join(missing)} (ingest first)")
            sources, tree_papers, leaf_papers = _paper_material(tree, lib, list(papers), trees, budget)
            subject = "; ".join(meta[p].title or p for p in papers)
        else:
            ranked = collapsed_search(lib, topic, 40, None, budget=budget)
            sources = [h for h in assistant.retriever.to_hits(ranked, "collapsed")]
            used = sorted({_paper_of(h.chunk) for h in sources} - {""})
            tree_papers = tuple(p for p in used if any(h.chunk.level > 0 and h.chunk.arxiv_id == p for h in sources))
            leaf_papers = tuple(p for p in used if p not in tree_papers)
            subject = topic.strip()
        if not sources:
            raise ValueError("no material found: ingest papers first")
        sources = [h.model_copy(update={"rank": i, "paper": meta.get(h.chunk.arxiv_id)}) for i, h in enumerate(sources, 1)]
        timings["material_s"] = round(time.perf_counter() - start, 3)
        checker = SupportChecker(llm, assistant.settings)
        try:
            t0 = time.perf_counter()
            written = DraftWriter(llm, checker, lib, assistant.settings.prompts_dir, progress).write(
                sources, subject, style_text, words)
            timings["generate_s"] = round(time.perf_counter() - t0, 3)
        finally:
            checker.close()
        extractive = not written.sentences
        kept = written.sentences or _extracts(sources, lib.store)
        text, citations = _cite(kept, lib.store)
        timings["total_s"] = round(time.perf_counter() - start, 3)
        return Draft(subject=subject, style=style, length_words=words, text=text, citations=tuple(citations),
                     sources=tuple(sources), tree_papers=tuple(tree_papers), leaf_papers=tuple(leaf_papers),
                     dropped=tuple(written.dropped), extractive=extractive, notes=tuple(written.notes),
                     support=tuple(written.support), model=getattr(llm, "model", ""), timings=timings)
    finally:
        tree.close()


def _paper_of(chunk: Chunk) -> str:
    return "" if chunk.arxiv_id == CORPUS_ID else chunk.arxiv_id


def _paper_material(tree: TreeStore, lib: Library, papers: list[str], trees: dict[str, str],
                    budget: int) -> tuple[list[Hit], tuple[str, ...], tuple[str, ...]]:
    """Per paper: its tree top-down (paper summary, then each lower layer) or, without a tree, its
    abstract and the passages nearest its title, until the paper's share of the budget is used."""
    share = max(150, budget // len(papers))
    hits: list[Hit] = []
    tree_papers, leaf_papers = [], []
    for aid in papers:
        picked: list[Chunk] = []
        used = 0
        if aid in trees:
            tree_papers.append(aid)
            candidates = [c for layer in tree.layers_of(aid) for c in layer]
        else:
            leaf_papers.append(aid)
            leaves = lib.store.chunks_of(aid, 0)
            record = lib.store.paper(aid)
            query = f"{record.paper.title}. main contribution, method and results" if record else "main contribution"
            near = [cid for cid, _ in lib.dense.search(query, 30, [aid])]
            by_id = {c.id: c for c in leaves}
            candidates = leaves[:1] + [by_id[c] for c in near if c in by_id]
        for c in dict.fromkeys(candidates):
            t = c.n_tokens or len(c.text) // 4
            if used + t > share:
                if picked:
                    break
                continue
            picked.append(c)
            used += t
        if aid not in trees:
            picked.sort(key=lambda c: c.char_start)
        hits.extend(Hit(chunk=c, score=1.0, source="raptor" if c.level else "dense") for c in picked)
    return hits, tuple(tree_papers), tuple(leaf_papers)


def _extracts(sources: Sequence[Hit], store: Store) -> list[tuple[str, Chunk]]:
    """Nothing citable came back: from each leaf under the first sources, its first sentence of running
    prose (not a title line, an author list or a fragment cut at the chunk's edge), verbatim."""
    out = []
    for hit in sources[:6]:
        leaves = leaves_of(store, hit.chunk.id)
        if not leaves:
            continue
        sentences = split_sentences(" ".join(leaves[0].text.split()))[1:]  # the first may start mid-sentence
        prose = next((x for x in sentences if is_prose(x) and 8 <= len(x.split()) <= 60 and x[:1].isupper()
                      and x.rstrip()[-1:] in ".!?"), None)
        if prose and all(prose != kept for kept, _ in out):
            out.append((prose, leaves[0]))
    return out


def _cite(kept: Sequence[tuple[str, Chunk]], store: Store) -> tuple[str, list[Citation]]:
    """The draft's text with [n] markers, numbered by first citation, and the citations they point at."""
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    out: list[str] = []
    for sentence, leaf in kept:
        if leaf.id not in numbers:
            numbers[leaf.id] = len(numbers) + 1
            record = store.paper(leaf.arxiv_id)
            p = record.paper if record else None
            citation = Citation(n=numbers[leaf.id], chunk_id=leaf.id, arxiv_id=leaf.arxiv_id, section=leaf.section,
                                page_start=leaf.page_start, page_end=leaf.page_end,
                                quote=best_quote(sentence, leaf.text))
            citations.append(citation.with_paper(p))  # title, authors, PDF, DOI and the library's citation key
        out.append(place_markers(sentence, f"[{numbers[leaf.id]}]"))
    return " ".join(out), citations
