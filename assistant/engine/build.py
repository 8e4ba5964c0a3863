"""The Answer builder: checked lines in, one typed Answer out, with the provenance that made it.

Every answer path (single-shot, agentic) ends here, so an answer, an extract and an abstention carry the same
fields: passages, quotes, verdicts, the gate's probability, the prompt and settings used, and timings.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from assistant.engine.support import Support
from assistant.engine.write import Draft, quotable_sentences, quoted
from foundation.text import content_words, place_markers, restates
from foundation.types import Answer, Citation, Hit, Quote, Verdict

ABSTAIN_TEXT = "The indexed papers do not answer this question."
EXTRACTIVE_QUOTES = 2


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
        self.quotes: tuple[Quote, ...] = ()
        self.relevance = 0.0
        self.term_coverage = 0.0

    def from_draft(self, draft: Draft, checked: Checked, p: float | None, picked: bool) -> Answer:
        """The kept sentences as the answer; with none kept, the best quotes verbatim (the gate said answerable:
        the papers' own words beat no answer). picked: the model named quotes (answer_style "quotes"), so even a
        failed reply falls back to the best quotes; a written answer cut short keeps what it had."""
        if not checked.kept and (not draft.error or picked):
            return self.extractive(p, checked.verdicts, draft)
        if draft.verbatim:
            text = " ".join(quoted(cited[0], [sentence]) for sentence, cited, _ in checked.kept)
        else:
            text = " ".join(with_markers(sentence, cited, weak) for sentence, cited, weak in checked.kept)
        cited = sorted({n for _, ns, _ in checked.kept for n in ns})
        return self.answer(text, p, checked.verdicts, cited, draft, partial=bool(draft.error))

    def extractive(self, p: float | None, verdicts: Sequence[Verdict], draft: Draft) -> Answer:
        extracts = [(q, quotable_sentences(q.text)) for q in sorted(self.quotes, key=lambda q: -q.score)]
        best = [(q, sentences) for q, sentences in extracts if sentences][:EXTRACTIVE_QUOTES]
        if not best:
            return self.abstain("no generated sentence is supported and no quote reads as an answer", p, verdicts,
                                draft)
        text = " ".join(quoted(q.n, sentences) for q, sentences in sorted(best, key=lambda b: b[0].n))
        return self.answer(text, p, verdicts, [q.n for q, _ in best], draft, extractive=True,
                           partial=bool(draft.error))

    def answer(self, text: str, p: float | None, verdicts: Sequence[Verdict], cited: Sequence[int], draft: Draft,
               extractive: bool = False, partial: bool = False) -> Answer:
        citations = tuple(self.citation(self.quotes[n - 1]) for n in cited)
        return Answer(question=self.question, text=text, citations=citations, passages=self.hits,
                      quotes=self.quotes, extractive=extractive, answerability=_round(p), error=draft.error,
                      model=self.model, prompt=self.prompt, queries=self.queries, verdicts=tuple(verdicts),
                      settings={**self.provenance, "draft": draft.raw}, timings=self.timings, partial=partial)

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
                        page_start=q.page_start, page_end=q.page_end, quote=q.text,
                        authors=paper.authors if paper else (), year=paper.year if paper else None)


def _round(p: float | None) -> float | None:
    return None if p is None else round(p, 4)
