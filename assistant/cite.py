"""Turn a model's [n] markers into checked citations; align sentences with passages in code.

Small local models omit markers or cite the wrong passage (FACTS.md), so markers are validated
against the passages actually shown, and a sentence without one is aligned to the passage
whose words it shares most.
"""
from __future__ import annotations

import re
from typing import Sequence

from assistant.types import Answer, Citation, Hit

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\[(])")
WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
STOP = frozenset("""a an the of to in on for and or is are was were be been by with as at from that this these those it its
which what how why when where who we our their they can has have had not no than then so such into over under per via
do does did also more most less only both each other between about using used use""".split())

# A sentence is attributed to a passage it never cited only if it shares this share of content words.
ALIGN_MIN_OVERLAP = 0.5


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for line in text.splitlines() for p in SENTENCE_END.split(line)]
    return [p for p in parts if p]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words that carry meaning (enough to align a sentence with a passage)."""
    return {_stem(w.lower()) for w in WORD.findall(text) if w.lower() not in STOP and len(w) > 1}


# A sentence whose content words lie mostly (this share, at least 5 words) inside an earlier one restates it.
REPEATED = 0.7


def restates(words: set[str], earlier: set[str]) -> bool:
    shared = len(words & earlier)
    return shared >= 5 and shared >= REPEATED * min(len(words), len(earlier))


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


def markers_in(sentence: str) -> list[int]:
    nums: list[int] = []
    for group in MARKER.findall(sentence):
        nums.extend(int(n) for n in re.split(r"\s*[,;]\s*", group))
    return nums


def overlap(sentence: str, passage: str) -> float:
    words = content_words(MARKER.sub("", sentence))
    if not words:
        return 0.0
    return len(words & content_words(passage)) / len(words)


def best_quote(sentence: str, passage: str) -> str:
    """The passage sentence sharing most content words with the citing sentence."""
    candidates = split_sentences(passage) or [passage]
    return max(candidates, key=lambda c: overlap(sentence, c)).strip()


def attach_citations(text: str, passages: Sequence[Hit]) -> tuple[str, list[Citation]]:
    """Validate markers, drop ones that point at nothing shown, add one where alignment is clear.

    Returns the cleaned text and the citations in marker order.
    """
    out_sentences: list[str] = []
    cited: dict[int, Citation] = {}
    for sentence in split_sentences(text):
        valid = [n for n in dict.fromkeys(markers_in(sentence)) if 1 <= n <= len(passages)]
        bare = MARKER.sub("", sentence).rstrip()
        bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
        if not valid and passages:
            scores = [overlap(bare, h.chunk.text) for h in passages]
            best = max(range(len(passages)), key=scores.__getitem__)
            if scores[best] >= ALIGN_MIN_OVERLAP:
                valid = [best + 1]
        for n in valid:
            if n not in cited:
                cited[n] = _citation(n, passages[n - 1], bare)
        if valid:
            tail = "".join(f"[{n}]" for n in valid)
            if bare and bare[-1] in ".!?":
                bare = f"{bare[:-1]} {tail}{bare[-1]}"
            else:
                bare = f"{bare} {tail}"
        out_sentences.append(bare)
    return " ".join(out_sentences), sorted(cited.values(), key=lambda c: c.n)


def _citation(n: int, hit: Hit, sentence: str) -> Citation:
    c = hit.chunk
    paper = hit.paper
    return Citation(n=n, chunk_id=c.id, arxiv_id=c.arxiv_id, title=hit.paper_title, section=c.section,
                    page_start=c.page_start, page_end=c.page_end, quote=best_quote(sentence, c.text),
                    authors=paper.authors if paper else (), year=paper.year if paper else None)


def answer_to_markdown(answer: Answer) -> str:
    """Answer text, a references list, and BibTeX entries for the cited papers."""
    lines = [f"**Q:** {answer.question}", "", answer.text, ""]
    if answer.citations:
        lines.append("### References")
        for c in answer.citations:
            lines.append(f"- {c.label}" + (f"\n  > {c.quote}" if c.quote else ""))
        lines += ["", "### BibTeX", "```bibtex"]
        seen = set()
        for c in answer.citations:
            if c.arxiv_id in seen:
                continue
            seen.add(c.arxiv_id)
            lines.append(bibtex_entry(c))
        lines.append("```")
    return "\n".join(lines).rstrip() + "\n"


def bibtex_entry(c: Citation) -> str:
    surname = re.sub(r"[^A-Za-z]", "", c.authors[0].split()[-1]) if c.authors else "arxiv"
    key = f"{surname.lower()}{c.year or ''}_{re.sub(r'[^0-9]', '', c.arxiv_id)}"
    fields = [f"  title = {{{{{c.title or c.arxiv_id}}}}}"]
    if c.authors:
        fields.append(f"  author = {{{' and '.join(c.authors)}}}")
    if c.year:
        fields.append(f"  year = {{{c.year}}}")
    fields += [f"  eprint = {{{c.arxiv_id}}}", "  archivePrefix = {arXiv}", f"  url = {{https://arxiv.org/abs/{c.arxiv_id}}}"]
    return "@misc{" + key + ",\n" + ",\n".join(fields) + "\n}"
