"""Evidence selection: the sentences of the retrieved passages that bear on the question, as numbered quotes.

A small model reads a short list of quotes better than eight whole passages, and a short prompt gives the
first token in seconds (FACTS.md: time to first token grows with passage tokens). Sentences are scored with
what retrieval already has, no model call: the question's rare terms they hold (BM25's idf), their dense
cosine to the question and their late-interaction MaxSim (MiniLM token vectors, as ColBERT scores passages;
both from one encoder pass over the candidates), and the rank of their passage. A sentence that leans on
the one before it ("This ...", "It ...") is quoted with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from foundation.text import is_prose, lexical_terms, sentence_spans, squash, without_heading
from foundation.types import Hit, Quote
from assistant.engine.passages import sanitize_passage

# A sentence starting like this continues the one before it: quote them together.
LEANS_BACK = re.compile(r"^(this|these|that|those|it|its|they|their|such|thus|hence|therefore|however|moreover|"
                        r"in (this|that|particular|contrast|addition)|as a result|here|both|each of)\b", re.I)
# arXiv's watermark, which pypdf reads into the first page's text: "arXiv:2305.13245v3 [cs.CL] 23 Dec 2023".
ARXIV_STAMP = re.compile(r"arXiv:\d{4}\.\d{4,5}v\d+\s*\[[\w.-]+\]\s*\d{1,2}\s+\w{3}\s+\d{4}\s*")
# A caption, or a sentence that points at a figure or table instead of stating what it shows: the small model
# quotes "ROUGE-L and ChatGPT evaluations ... are shown in Figure 3" as an answer (q087).
POINTS_AT_FIGURE = re.compile(r"^(?:figure|fig\.|table)\s*\d+\s*[:.]|\b(?:shown|given|listed|presented|reported|"
                              r"summari[sz]ed|illustrated|plotted|depicted|visuali[sz]ed)\s+in\s+(?:figure|fig\.|table)s?"
                              r"\s*\d|^see\s+(?:figure|fig\.|table)", re.I)
CHARS_PER_TOKEN = 4.2  # scientific English in the generator's tokenizer, measured on the corpus


@dataclass(frozen=True)
class EvidenceWeights:
    """How the sentence features, each standardised within the question's candidates, are mixed.

    bench/evidence.py on dev.jsonl (top 8 hybrid passages, 450-token quotes, the 6,756-chunk index): MaxSim
    with the passage's rank keeps 0.818 of the gold evidence strings the passages hold; the dense cosine
    beside them keeps 0.800 but puts the evidence first for 16 of 37 questions instead of 13 (in the first
    two: 22 instead of 19), and the model and the extractive answer read the first quotes first. The idf
    lost evidence (0.655), so it is off."""
    lexical: float = 0.0
    dense: float = 1.0
    maxsim: float = 2.0
    passage: float = 1.0
    figure: float = -1.5  # added when the sentence is a caption or points at a figure/table (not standardised)


@dataclass(frozen=True)
class Candidate:
    passage: int    # 0-based index into the hits
    start: int      # offsets into the passage's text
    end: int
    text: str       # white space folded, sanitised


def candidates(hits: Sequence[Hit]) -> list[Candidate]:
    """Prose sentences of the passages (figure labels and table cells are not quotable) and the rows of table
    passages (one self-contained row a line: "Table 7 (...): First Layer (Embeddings): Dev F1 91.0."), each once."""
    out = []
    for i, hit in enumerate(hits):
        text = hit.chunk.text
        if hit.chunk.kind == "table":
            start = 0
            for row in text.split("\n"):
                if row.strip():
                    out.append(Candidate(i, start, start + len(row), sanitize_passage(" ".join(row.split()))[0]))
                start += len(row) + 1
            continue
        for start, end in sentence_spans(text):
            raw = text[start:end]
            if is_prose(raw):
                clean, _ = sanitize_passage(ARXIV_STAMP.sub("", squash(raw)).strip())
                out.append(Candidate(i, start, end, without_heading(clean, (hit.chunk.section, hit.paper_title))))
    return _without_repeats(out)


def _without_repeats(cands: list[Candidate]) -> list[Candidate]:
    """Neighbouring chunks overlap, and both are often retrieved: the sentences they share would be quoted
    twice, and the later chunk starts with the tail of a sentence ("need to write their intermediate results
    ...") that the model copies as if it were one. A sentence held whole by another passage's sentence goes;
    of two equal ones, the better-ranked passage's stays."""
    keys = [" ".join(c.text.lower().split()) for c in cands]
    kept = []
    for i, (c, key) in enumerate(zip(cands, keys)):
        repeated = any(j != i and cands[j].passage != c.passage and key in other
                       and (len(other) > len(key) or cands[j].passage < c.passage)
                       for j, other in enumerate(keys))
        if not repeated:
            kept.append(c)
    return kept


@dataclass
class Scored:
    candidates: list[Candidate]
    scores: np.ndarray
    features: dict[str, np.ndarray]


class EvidenceSelector:
    """Scores the candidate sentences of retrieved passages and picks quotes within a token budget.

    embed_tokens: texts -> (pooled vectors, token vectors), one encoder pass (SentenceTransformerEmbedder).
    idf: stemmed terms -> inverse document frequency (BM25Index.idf); None treats every term alike.
    """

    def __init__(self, embed_tokens: Callable, idf: Callable[[Sequence[str]], dict[str, float]] | None = None,
                 weights: EvidenceWeights = EvidenceWeights()):
        self.embed_tokens = embed_tokens
        self.idf = idf
        self.weights = weights

    def score(self, question: str, hits: Sequence[Hit]) -> Scored:
        cands = candidates(hits)
        if not cands:
            return Scored(cands, np.zeros(0), {})
        q_terms = sorted(set(lexical_terms(question)))
        idf = self.idf(q_terms) if self.idf and q_terms else {t: 1.0 for t in q_terms}
        total = sum(idf.values()) or 1.0
        lexical = np.array([sum(idf[t] for t in set(lexical_terms(c.text)) & idf.keys()) / total for c in cands])
        pooled, tokens = self.embed_tokens([question, *(c.text for c in cands)])
        dense = pooled[1:] @ pooled[0]
        q_tokens = tokens[0]
        maxsim = np.array([(q_tokens @ t.T).max(axis=1).mean() if len(t) and len(q_tokens) else 0.0
                           for t in tokens[1:]])
        passage = np.array([1.0 / (1 + c.passage) for c in cands])
        figure = np.array([1.0 if POINTS_AT_FIGURE.search(c.text) else 0.0 for c in cands])
        features = {"lexical": lexical, "dense": dense, "maxsim": maxsim, "passage": passage}
        w = self.weights
        z = {name: _standardised(values) for name, values in features.items()}
        scores = (w.lexical * z["lexical"] + w.dense * z["dense"] + w.maxsim * z["maxsim"] + w.passage * z["passage"]
                  + w.figure * figure)
        features["figure"] = figure
        return Scored(cands, scores, features)

    def select(self, question: str, hits: Sequence[Hit], budget_tokens: int = 450, max_quotes: int = 12,
               scored: Scored | None = None) -> list[Quote]:
        """Quotes best first: each pick is the best sentence left (with the sentence it leans on), merged
        with neighbours from the same passage, until the budget or the count is reached."""
        scored = scored or self.score(question, hits)
        cands, scores = scored.candidates, scored.scores
        index = {(c.passage, c.start): i for i, c in enumerate(cands)}
        taken: set[int] = set()
        groups: list[list[int]] = []
        used = 0
        for i in np.argsort(-scores, kind="stable"):
            i = int(i)
            if i in taken:
                continue
            members = [i]
            prev = self._previous(cands, index, i)
            if prev is not None and prev not in taken and (LEANS_BACK.match(cands[i].text)
                                                           or len(cands[i].text.split()) < 10):
                members.insert(0, prev)
            cost = sum(len(cands[m].text) for m in members) / CHARS_PER_TOKEN
            if used + cost > budget_tokens:
                if groups:
                    continue
            if len(groups) >= max_quotes:
                break
            taken.update(members)
            used += cost
            groups.append(members)
        groups = _merge_adjacent(groups, cands)
        return [_quote(n, [cands[m] for m in g], max(scores[m] for m in g), hits) for n, g in enumerate(groups, 1)]

    @staticmethod
    def _previous(cands: list[Candidate], index: dict, i: int) -> int | None:
        c = cands[i]
        before = [j for (p, s), j in index.items() if p == c.passage and s < c.start]
        return max(before, key=lambda j: cands[j].start) if before else None


def _standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-6) if len(values) > 1 else values * 0.0


def _merge_adjacent(groups: list[list[int]], cands: list[Candidate]) -> list[list[int]]:
    """Picks that are neighbouring sentences of one passage read better as one quote (kept at the rank of
    the better pick)."""
    merged: list[list[int]] = []
    for g in groups:
        for m in merged:
            same = cands[m[0]].passage == cands[g[0]].passage
            if same and (abs(min(m) - max(g)) == 1 or abs(min(g) - max(m)) == 1):
                m.extend(g)
                m.sort()
                break
        else:
            merged.append(sorted(g))
    return merged


def _quote(n: int, parts: list[Candidate], score: float, hits: Sequence[Hit]) -> Quote:
    hit = hits[parts[0].passage]
    c = hit.chunk
    return Quote(n=n, passage=parts[0].passage + 1, chunk_id=c.id, arxiv_id=c.arxiv_id, title=hit.paper_title,
                 section=c.section, page_start=c.page_start, page_end=c.page_end, start=parts[0].start,
                 end=parts[-1].end, text=" ".join(p.text for p in parts), score=round(float(score), 4))
