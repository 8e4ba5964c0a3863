"""Metrics as pure functions with typed results; the LLM judge is passed in, never built here.

Definitions and references: eval/README.md. In short:
- retrieval: paper- and evidence-level recall@k and MRR (evidence hit = whitespace-normalised containment);
- faithfulness (RAGAS, Es et al. 2023): supported sentences / all sentences, judged against the passages;
- citation recall / precision (ALCE, Gao et al. 2023): per sentence, do its cited passages together support it;
  is each citation needed;
- correctness: judged agreement with the gold answer, plus SQuAD token F1 (Rajpurkar et al. 2016);
- abstention: unanswerable questions declined, answerable ones answered.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, Sequence

from pydantic import BaseModel, ConfigDict

from foundation.text import MARKER, content_words, markers_in, numbers_ok, overlap, split_sentences
from eval.judge import JudgeVerdict
from eval.matching import evidence_hit, normalize_ws  # noqa: F401 (the eval's one definition)


class Result(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------- retrieval

def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of relevant items (one rank per item, 1-based, None = not retrieved) found in the top k."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def reciprocal_rank(ranks: Sequence[int | None]) -> float:
    """1 / rank of the first relevant result (0 when none was retrieved): averaged, this is MRR."""
    found = [r for r in ranks if r is not None]
    return 1.0 / min(found) if found else 0.0


class RetrievalScores(Result):
    """Ranks (1-based) at which the gold paper and each evidence string first appear; None = not retrieved."""

    n_passages: int
    paper_rank: int | None
    evidence_ranks: tuple[int | None, ...]

    def paper_recall(self, k: int) -> float:
        return recall_at_k([self.paper_rank], k)

    def evidence_recall(self, k: int) -> float:
        """Fraction of the evidence strings hit in the top k (a synthesis question needs both for 1.0)."""
        return recall_at_k(self.evidence_ranks, k) if self.evidence_ranks else 0.0

    @property
    def paper_rr(self) -> float:
        return reciprocal_rank([self.paper_rank])

    @property
    def evidence_rr(self) -> float:
        return reciprocal_rank(self.evidence_ranks)


def retrieval_scores(gold_arxiv_id: str | None, evidence: Sequence[str],
                     passages: Sequence[tuple[str, str]]) -> RetrievalScores:
    """passages: (arxiv id, text) best first."""
    paper_rank = next((i for i, (aid, _) in enumerate(passages, start=1) if gold_arxiv_id and aid == gold_arxiv_id), None)
    ev_ranks = []
    for ev in evidence:
        ev_ranks.append(next((i for i, (aid, text) in enumerate(passages, start=1)
                              if (not gold_arxiv_id or aid == gold_arxiv_id) and evidence_hit(text, ev)), None))
    return RetrievalScores(n_passages=len(passages), paper_rank=paper_rank, evidence_ranks=tuple(ev_ranks))


# --------------------------------------------------------------------------- the judge, injected

class SupportJudge(Protocol):
    def support(self, passages: Sequence[str], claim: str) -> JudgeVerdict:
        """Do the passages, taken together, support the claim?"""
        ...


class CorrectnessJudge(Protocol):
    def correct(self, question: str, gold: str, answer: str) -> JudgeVerdict: ...


def _judge_all(judge: SupportJudge, calls: Sequence[tuple[Sequence[str], str]]) -> list[JudgeVerdict]:
    """Independent verdicts, sent concurrently when the judge allows it (the server batches them)."""
    workers = max(1, int(getattr(judge, "workers", 1)))
    if workers == 1 or len(calls) <= 1:
        return [judge.support(p, c) for p, c in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls))) as pool:
        return list(pool.map(lambda pc: judge.support(*pc), calls))


def claims_of(answer_text: str) -> list[tuple[str, list[int]]]:
    """(sentence without [n] markers, its markers) for each sentence of an answer."""
    out = []
    for sentence in split_sentences(answer_text or ""):
        bare = normalize_ws(re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", sentence)))
        if bare and any(ch.isalnum() for ch in bare):
            out.append((bare, list(dict.fromkeys(markers_in(sentence)))))
    return out


# --------------------------------------------------------------------------- faithfulness

class SentenceVerdict(Result):
    sentence: str
    supported: bool | None = None
    error: str = ""


class FaithfulnessResult(Result):
    """score = supported / total sentences; a verdict the judge failed to give counts as not supported."""

    score: float | None
    n_sentences: int
    n_supported: int
    n_errors: int
    sentences: tuple[SentenceVerdict, ...]


def score_faithfulness(answer_text: str, passages: Sequence[str], judge: SupportJudge) -> FaithfulnessResult:
    """RAGAS-style faithfulness of any answer to the passages it was given.

    The answer is split into sentences ([n] markers removed); each is judged supported or not by all
    the passages together. An empty answer has no claims: its score is None (undefined), not 1.
    """
    claims = [c for c, _ in claims_of(answer_text)]
    if not claims:
        return FaithfulnessResult(score=None, n_sentences=0, n_supported=0, n_errors=0, sentences=())
    texts = tuple(p for p in passages if p and p.strip())
    if not texts:
        verdicts = [SentenceVerdict(sentence=c, supported=False, error="no passages") for c in claims]
    else:
        verdicts = [SentenceVerdict(sentence=c, supported=v.supported, error=v.error)
                    for c, v in zip(claims, _judge_all(judge, [(texts, c) for c in claims]))]
    supported = sum(1 for v in verdicts if v.supported is True)
    errors = sum(1 for v in verdicts if v.supported is None)
    return FaithfulnessResult(score=supported / len(verdicts), n_sentences=len(verdicts), n_supported=supported,
                              n_errors=errors, sentences=tuple(verdicts))


def mean_faithfulness(results: Sequence[FaithfulnessResult]) -> dict[str, float | int | None]:
    """Over many answers: how many there were and were scored (an empty answer has no score), the mean score of
    those, and the verdicts the judge failed to give."""
    values = [r.score for r in results if r.score is not None]
    return {"records": len(results), "scored": len(values),
            "faithfulness": round(sum(values) / len(values), 4) if values else None,
            "judge_errors": sum(r.n_errors for r in results)}


# --------------------------------------------------------------------------- grounding (no judge)

class GroundingResult(Result):
    """score = sentences whose numbers and content words are in the text they cite / sentences."""

    score: float | None
    n_sentences: int
    n_grounded: int
    ungrounded: tuple[str, ...] = ()


GROUNDED_WORDS = 0.8  # share of a sentence's content words its cited text must hold


def score_grounding(answer_text: str, sources: Sequence[str]) -> GroundingResult:
    """A judge-free check of every sentence against the source(s) it cites: all its numbers, and at least
    GROUNDED_WORDS of its content words (stemmed), must be there. A sentence citing nothing is ungrounded."""
    claims = claims_of(answer_text)
    if not claims:
        return GroundingResult(score=None, n_sentences=0, n_grounded=0)
    bad = []
    for sentence, cites in claims:
        cited = " ".join(sources[i - 1] for i in cites if 1 <= i <= len(sources))
        held = overlap(sentence, cited) if content_words(sentence) else 1.0  # nothing to hold: vacuous
        if not cited or not numbers_ok(sentence, cited) or held < GROUNDED_WORDS:
            bad.append(sentence)
    return GroundingResult(score=(len(claims) - len(bad)) / len(claims), n_sentences=len(claims),
                           n_grounded=len(claims) - len(bad), ungrounded=tuple(bad))


# --------------------------------------------------------------------------- citations (ALCE)

class SentenceCitations(Result):
    sentence: str
    citations: tuple[int, ...]
    supported: bool | None = None  # do the cited passages together support it (None: judge error)
    precise: tuple[int, ...] = ()  # the citations counted as precise
    note: str = ""


class CitationResult(Result):
    """ALCE citation recall (supported-by-citations sentences / sentences) and precision (precise / citations)."""

    recall: float | None
    precision: float | None
    n_sentences: int
    n_citations: int
    n_errors: int
    sentences: tuple[SentenceCitations, ...]


def score_citations(answer_text: str, passages: Sequence[str], judge: SupportJudge) -> CitationResult:
    """Citation recall and precision as in ALCE (Gao et al. 2023, "Enabling LLMs to generate text with citations").

    Markers [n] point at ``passages`` (1-based). Per sentence: recall = 1 if its cited passages together
    support it (no citation, or a citation to a passage that was not retrieved, gives 0). Precision: a
    citation of a supported sentence is precise unless it alone does not support the sentence and the
    other citations do without it; every citation of an unsupported sentence is imprecise. An answer
    with sentences but no citations scores 0/0 -> precision 0, as in ALCE; an empty answer is None.
    """
    claims = claims_of(answer_text)
    if not claims:
        return CitationResult(recall=None, precision=None, n_sentences=0, n_citations=0, n_errors=0, sentences=())
    n = len(passages)

    def texts(ids: Sequence[int]) -> tuple[str, ...]:
        return tuple(passages[i - 1] for i in ids)

    joint_calls = [(i, texts(cites), sent) for i, (sent, cites) in enumerate(claims)
                   if cites and all(1 <= c <= n for c in cites)]
    joint = dict(zip([i for i, _, _ in joint_calls], _judge_all(judge, [(p, s) for _, p, s in joint_calls])))
    rows: list[SentenceCitations] = []
    errors = 0
    for i, (sent, cites) in enumerate(claims):
        if not cites:
            rows.append(SentenceCitations(sentence=sent, citations=(), supported=False, note="no citation"))
            continue
        if i not in joint:
            bad = [c for c in cites if not 1 <= c <= n]
            rows.append(SentenceCitations(sentence=sent, citations=tuple(cites), supported=False,
                                          note=f"cites passage(s) {bad} that were not retrieved"))
            continue
        verdict = joint[i]
        if verdict.supported is None:
            errors += 1
        if verdict.supported is not True:
            rows.append(SentenceCitations(sentence=sent, citations=tuple(cites), supported=verdict.supported,
                                          note=verdict.error))
            continue
        if len(cites) == 1:
            rows.append(SentenceCitations(sentence=sent, citations=tuple(cites), supported=True, precise=tuple(cites)))
            continue
        precise = []
        alone = _judge_all(judge, [(texts([c]), sent) for c in cites])
        for c, v in zip(cites, alone):
            if v.supported is True:
                precise.append(c)
                continue
            rest = [x for x in cites if x != c]
            without = judge.support(texts(rest), sent)
            errors += (v.supported is None) + (without.supported is None)
            if without.supported is not True:  # needed: the others do not carry the sentence without it
                precise.append(c)
        rows.append(SentenceCitations(sentence=sent, citations=tuple(cites), supported=True, precise=tuple(precise)))
    n_cites = sum(len(r.citations) for r in rows)
    recall = sum(1 for r in rows if r.supported is True) / len(rows)
    precision = sum(len(r.precise) for r in rows) / n_cites if n_cites else 0.0
    return CitationResult(recall=recall, precision=precision, n_sentences=len(rows), n_citations=n_cites,
                          n_errors=errors, sentences=tuple(rows))


# --------------------------------------------------------------------------- correctness

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = MARKER.sub(" ", text or "").lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token-overlap F1 between an answer and the gold answer (0 when either is empty)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


class CorrectnessResult(Result):
    token_f1: float
    judged: bool | None = None  # None: not judged (no judge) or the judge failed
    score: float | None = None  # a scored judge's P(Yes): the verdict can be re-read at another threshold
    error: str = ""


def score_correctness(question: str, gold: str, answer_text: str, judge: CorrectnessJudge | None) -> CorrectnessResult:
    f1 = token_f1(answer_text, gold)
    if judge is None:
        return CorrectnessResult(token_f1=f1)
    if not normalize_answer(answer_text):
        return CorrectnessResult(token_f1=f1, judged=False, error="empty answer")
    verdict = judge.correct(question, gold, MARKER.sub("", answer_text))
    return CorrectnessResult(token_f1=f1, judged=verdict.supported, score=verdict.score, error=verdict.error)


# --------------------------------------------------------------------------- abstention

def abstention_ok(answerable: bool, abstained: bool) -> bool:
    """Right behaviour: decline an unanswerable question, answer an answerable one."""
    return abstained != answerable
