"""The Answer builder: checked lines in, one typed Answer out, with the provenance that made it.

Every answer path (single-shot, agentic) ends here, so an answer, an extract and an abstention carry the same
fields: passages, quotes, verdicts, the gate's probability, the prompt and settings used, and timings. Quotes
are numbered in the order the answer shows them ([1] first), and the citations follow the same order; a checked
direct answer goes above them; a comparison's quotes are grouped under their papers.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from assistant.engine.support import Support
from assistant.engine.write import Draft, quotable_sentences, quoted
import re

from foundation.text import content_words, overlap, place_markers, restates
from foundation.types import Answer, Citation, Hit, Quote, Verdict

ABSTAIN_TEXT = "The indexed papers do not answer this question."
EXTRACTIVE_QUOTES = 2
RELATED_QUOTES = 2  # shown under a decline as "related, does not answer"
DIRECT_CITES_MIN = 0.2  # a picked quote the direct answer shares this share of words with is cited by it
COMPARISON = re.compile(r"\b(compare[sd]?|comparison|difference|differ|versus|vs\.?|contrast)\b|\bhow does .+ "
                        r"(?:compare|relate) to\b", re.I)


def with_markers(sentence: str, cited: Sequence[int], unsupported: bool = False) -> str:
    """The one way a sentence gets its [n] markers (before its final stop) and the unsupported mark."""
    return place_markers(sentence, "".join(f"[{n}]" for n in cited) + (" [unsupported]" if unsupported else ""))


@dataclass
class Checked:
    """The draft's sentences with their verdicts, and those kept for the answer: (sentence, cited, weak)."""
    verdicts: list[Verdict] = field(default_factory=list)
    kept: list[tuple[str, list[int], bool]] = field(default_factory=list)


def collect_verdicts(draft: Draft, remove_unsupported: bool) -> Checked:
    """Waits for every check; keeps supported sentences once each (the model repeats itself)."""
    out, seen = Checked(), []
    for line in draft.lines:
        for sentence, check in zip(line.sentences, line.checks):
            result: Support = check.result() if isinstance(check, Future) else check
            out.verdicts.append(Verdict(sentence=sentence, citations=tuple(line.cited), supported=result.supported,
                                        support=result.score, note=result.note))
            words = content_words(sentence)
            if result.supported is False and remove_unsupported:
                continue
            if result.supported is None or any(restates(words, w) for w in seen):
                continue  # unchecked, or the model repeating itself
            seen.append(words)
            out.kept.append((sentence, line.cited, not result.supported))
    return out


class AnswerBuilder:
    """Builds the Answer of one question from what the steps produced; `provenance` is the engine's own record
    (engine name, mode, settings that shaped it, plan, ...), extended per answer."""

    def __init__(self, question: str, hits: Sequence[Hit], model: str, prompt: str, queries: Sequence[str],
                 provenance: dict[str, Any], timings: dict[str, float]):
        self.question, self.hits, self.model, self.prompt = question, tuple(hits), model, prompt
        self.queries, self.provenance, self.timings = tuple(queries) or (question,), provenance, timings
        self.original: tuple[Quote, ...] = ()  # as selected, numbered as the model saw them
        self.quotes: tuple[Quote, ...] = ()    # renumbered in the order the answer shows them
        self.mapping: dict[int, int] = {}
        self.relevance = 0.0
        self.term_coverage = 0.0

    def from_draft(self, draft: Draft, checked: Checked, p: float | None, picked: bool,
                   direct: tuple[str, Support | None] = ("", None)) -> Answer:
        """The kept sentences as the answer; with none kept, the best quotes verbatim (the gate said answerable:
        the papers' own words beat no answer). picked: the model named quotes (answer_style "quotes"), so even a
        failed reply falls back to the best quotes; a written answer cut short keeps what it had."""
        if not checked.kept and (not draft.error or picked):
            return self.extractive(p, checked.verdicts, draft)
        order = draft.shown if draft.verbatim else [n for _, ns, _ in checked.kept for n in ns]
        support = direct[1]
        refs = self.direct_citations(direct[0], order) if direct[0] else []
        shown_first = support is not None and support.supported and refs
        self.renumber([*refs, *order] if shown_first else order)  # the answer's first marker is [1]
        m = self.mapping
        if draft.verbatim:
            parts = [(cited[0], quoted(m[cited[0]], [sentence])) for sentence, cited, _ in checked.kept]
        else:
            parts = [(cited[0] if cited else 0, with_markers(sentence, [m[n] for n in cited], weak))
                     for sentence, cited, weak in checked.kept]
        parts.sort(key=lambda part: m.get(part[0], 0))  # the quotes in the order of their numbers
        cited = sorted(dict.fromkeys(m[n] for _, ns, _ in checked.kept for n in ns))
        verdicts = list(checked.verdicts)
        top = ""
        if direct[0]:
            verdicts.insert(0, Verdict(sentence=direct[0], citations=tuple(m[n] for n in refs),
                                       supported=support.supported if support else None,
                                       support=support.score if support else None,
                                       note=f"direct answer: {support.note if support else 'not checked'}"))
            if shown_first:
                top = with_markers(direct[0], [m[n] for n in refs])
        text = self.grouped(parts)
        return self.answer(f"{top}\n\n{text}" if top else text, p, verdicts, cited, draft,
                           partial=bool(draft.error), direct_answer=top)

    def set_quotes(self, quotes: Sequence[Quote]) -> None:
        self.original = self.quotes = tuple(quotes)
        self.mapping = {q.n: q.n for q in quotes}

    def direct_citations(self, sentence: str, picked: list[int]) -> list[int]:
        """The shown quotes the direct answer draws on, the one holding most of its words first (it is [1]); else
        the first pick."""
        by_n = {q.n: q for q in self.original}
        share = {n: overlap(sentence, by_n[n].text) for n in picked if n in by_n}
        refs = sorted((n for n in share if share[n] >= DIRECT_CITES_MIN), key=lambda n: -share[n])
        return refs or picked[:1]

    def grouped(self, parts: list[tuple[int, str]]) -> str:
        """The answer's lines; for a comparison whose quotes come from two or more papers, under each paper's title."""
        by_n = {q.n: q for q in self.original}
        papers = list(dict.fromkeys(by_n[n].arxiv_id for n, _ in parts if n in by_n))
        if len(papers) < 2 or not COMPARISON.search(self.question):
            return " ".join(text for _, text in parts)
        blocks = []
        for paper in papers:
            title = next(by_n[n].title or paper for n, _ in parts if n in by_n and by_n[n].arxiv_id == paper)
            blocks.append(f"{title}: " + " ".join(t for n, t in parts if n in by_n and by_n[n].arxiv_id == paper))
        loose = [t for n, t in parts if n not in by_n]
        return "\n".join(blocks + loose)

    def extractive(self, p: float | None, verdicts: Sequence[Verdict], draft: Draft) -> Answer:
        extracts = [(q, quotable_sentences(q.text)) for q in sorted(self.original, key=lambda q: -q.score)]
        best = [(q, sentences) for q, sentences in extracts if sentences][:EXTRACTIVE_QUOTES]
        if not best:
            return self.abstain("no generated sentence is supported and no quote reads as an answer", p, verdicts,
                                draft)
        best.sort(key=lambda b: b[0].n)
        self.renumber([q.n for q, _ in best])
        text = self.grouped([(q.n, quoted(self.mapping[q.n], sentences)) for q, sentences in best])
        return self.answer(text, p, verdicts, [self.mapping[q.n] for q, _ in best], draft, extractive=True,
                           partial=bool(draft.error))

    def renumber(self, order: Sequence[int]) -> None:
        """Quotes numbered in the order shown ([1] first), the rest after them in their own order."""
        first = [n for n in dict.fromkeys(order) if any(q.n == n for q in self.original)]
        rest = [q.n for q in self.original if q.n not in first]
        self.mapping = {n: i for i, n in enumerate(first + rest, start=1)}
        self.quotes = tuple(sorted((q.model_copy(update={"n": self.mapping[q.n]}) for q in self.original),
                                   key=lambda q: q.n))

    def answer(self, text: str, p: float | None, verdicts: Sequence[Verdict], cited: Sequence[int], draft: Draft,
               extractive: bool = False, partial: bool = False, direct_answer: str = "") -> Answer:
        """cited: numbers in the answer's (renumbered) order."""
        by_n = {q.n: q for q in self.quotes}
        m = self.mapping
        verdicts = [v if v.note.startswith("direct answer") else
                    v.model_copy(update={"citations": tuple(m.get(n, n) for n in v.citations)}) for v in verdicts]
        citations = tuple(self.citation(by_n[n]) for n in cited)
        return Answer(question=self.question, text=text, citations=citations, passages=self.hits,
                      quotes=self.quotes, direct_answer=direct_answer, extractive=extractive,
                      answerability=_round(p), error=draft.error, model=self.model, prompt=self.prompt,
                      queries=self.queries, verdicts=tuple(verdicts), settings={**self.provenance, "draft": draft.raw},
                      timings=self.timings, partial=partial)

    def decline(self, text: str, reason: str, related: Sequence[int], p: float | None, verdicts: Sequence[Verdict],
                draft: Draft) -> Answer:
        """An abstention that says what is missing, with the closest quotes shown as related, not as an answer."""
        related = list(related)[:RELATED_QUOTES]
        if not related:
            return self.abstain(reason, p, verdicts, draft)
        self.renumber(related)
        by_n = {q.n: q for q in self.original}
        shown = " ".join(quoted(self.mapping[n], quotable_sentences(by_n[n].text) or [by_n[n].text]) for n in related)
        answer = self.abstain(reason, p, verdicts, draft)
        cites = tuple(self.citation(q) for q in self.quotes if q.n <= len(related))
        return answer.model_copy(update={"text": f"{text}\n\nRelated, does not answer: {shown}", "citations": cites,
                                         "quotes": self.quotes})

    def abstain(self, reason: str, p: float | None = None, verdicts: Sequence[Verdict] = (),
                draft: Draft | None = None, **extra: Any) -> Answer:
        strong = self.relevance >= 0.6 or self.term_coverage >= 0.8
        note = {"gate_disagrees_with_retrieval": True} if strong and p is not None else {}
        settings = {**self.provenance, "draft": draft.raw if draft else "", "abstain_reason": reason, **note, **extra}
        return Answer(question=self.question, text=ABSTAIN_TEXT, abstained=True, abstain_reason=reason,
                      passages=self.hits, quotes=self.quotes, answerability=_round(p), model=self.model,
                      prompt=self.prompt, queries=self.queries, verdicts=tuple(verdicts), settings=settings,
                      timings=self.timings, error=draft.error if draft else "")

    def citation(self, q: Quote) -> Citation:
        paper = self.hits[q.passage - 1].paper if 0 < q.passage <= len(self.hits) else None
        return Citation(n=q.n, chunk_id=q.chunk_id, arxiv_id=q.arxiv_id, title=q.title, section=q.section,
                        page_start=q.page_start, page_end=q.page_end, quote=q.text).with_paper(paper)


def _round(p: float | None) -> float | None:
    return None if p is None else round(p, 4)
