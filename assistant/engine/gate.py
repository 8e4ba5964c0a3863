"""Answerability: do the papers answer the question, or only share its topic?

A calibrated decision from signals that separate near-topic questions, not one score: how close the best
passage and sentence are (dense cosine, late-interaction MaxSim, BM25 against its best possible score),
how much of the question's rare terms, names and numbers the selected quotes hold, and, when the backend
gives log-probabilities, the model's P(Yes) that the quotes answer it. A logistic model fitted on a
calibration set built from the corpus (eval/calibration/) turns them into P(answerable); the threshold
is a setting with a documented operating point.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from foundation.text import lexical_terms, names_in, numbers_in
from foundation.types import Quote

MODEL_FILE = Path(__file__).with_name("answerability.json")


@dataclass(frozen=True)
class Signals:
    relevance: float        # best passage's dense cosine
    bm25: float             # best BM25 score over the question's total idf (0 when BM25 is off)
    maxsim: float           # best candidate sentence's MaxSim with the question
    sentence_cosine: float  # best candidate sentence's dense cosine
    term_coverage: float    # idf-weighted share of the question's terms found in the quotes
    rare_coverage: float    # share of the question's three rarest terms found in the quotes
    name_coverage: float    # share of the question's names and terms found in the quotes or their titles
    number_coverage: float  # share of the question's numbers found in the quotes
    p_yes: float | None = None  # the model's P(Yes) that the quotes answer (None: not asked)
    p_none: float | None = None  # the model's P("[0]": no quote answers) at its pick (None: not known)

    def as_dict(self) -> dict[str, float | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def evidence_signals(question: str, quotes: Sequence[Quote], idf: Callable[[Sequence[str]], dict[str, float]] | None,
                     relevance: float, bm25_top: float, maxsim: float, sentence_cosine: float) -> Signals:
    """Signals from retrieval and the selected quotes (everything but the model's P(Yes))."""
    text = " ".join(q.text for q in quotes)
    titles = " ".join(dict.fromkeys(q.title for q in quotes))
    have = set(lexical_terms(text))
    terms = sorted(set(lexical_terms(question)))
    weights = idf(terms) if idf and terms else {t: 1.0 for t in terms}
    total = sum(weights.values())
    coverage = sum(w for t, w in weights.items() if t in have) / total if total else 0.0
    rare = sorted(terms, key=lambda t: -weights[t])[:3]
    rare_cov = sum(t in have for t in rare) / len(rare) if rare else 1.0
    haystack = f"{text} {titles}".lower()
    names = names_in(question)
    name_cov = sum(n in haystack for n in names) / len(names) if names else 1.0
    numbers = numbers_in(question)
    quote_numbers = numbers_in(text)
    number_cov = sum(n in quote_numbers for n in numbers) / len(numbers) if numbers else 1.0
    bm25 = bm25_top / total if total else 0.0
    return Signals(relevance, bm25, maxsim, sentence_cosine, coverage, rare_cov, name_cov, number_cov)


@dataclass(frozen=True)
class AnswerabilityModel:
    """Logistic regression over standardised signals; `with_p_yes` says whether it reads the model's P(Yes)."""
    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    model: str = ""  # the LLM whose P(Yes) it was fitted on, if any

    @property
    def with_p_yes(self) -> bool:
        return "p_yes" in self.features

    def probability(self, signals: Signals) -> float:
        values = asdict(signals)
        z = self.bias
        for name, mean, scale, weight in zip(self.features, self.means, self.scales, self.weights):
            value = values[name]
            if value is None:
                value = mean  # a signal we could not get counts as average
            z += weight * (float(value) - mean) / scale
        return 1.0 / (1.0 + math.exp(-z))


@lru_cache(maxsize=8)
def load_models(path: Path = MODEL_FILE) -> dict[str, AnswerabilityModel]:
    """Fitted models by name ("retrieval" without the LLM; "<model name>" with its P(Yes))."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: AnswerabilityModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
            for name, spec in raw["models"].items()}


def model_for(llm_model: str, path: Path = MODEL_FILE) -> AnswerabilityModel | None:
    """The model fitted with this LLM's P(Yes), else the one fitted without any LLM."""
    models = load_models(path)
    return models.get(llm_model) or models.get("retrieval")


class Gate:
    """The decline decision at its two moments: before any generation (off-topic by relevance, or the fitted
    model when it needs no LLM call) and after the model's P(Yes) arrives (a model fitted with it)."""

    def __init__(self, model: AnswerabilityModel | None, threshold: float, min_relevance: float):
        self.model, self.threshold, self.min_relevance = model, threshold, min_relevance

    @property
    def asks_llm(self) -> bool:
        return self.model is not None and self.model.with_p_yes

    def before_generation(self, relevance: float, signals: Signals, routed: bool = False) -> tuple[str, float | None]:
        """(why to decline, P(answerable)): '' when the question goes on to the model. A question routed to one
        paper (engine/route.py) names what it asks about only as "the paper": the fitted model, which reads
        names and rare terms, would decline it; the model's pick decides instead."""
        if relevance < self.min_relevance:  # off-topic: no model call at all
            return f"best passage relevance {relevance:.2f} < {self.min_relevance}", None
        if self.model is None or self.model.with_p_yes or routed:
            return "", None
        return self.decline(self.model.probability(signals))

    def after_generation(self, signals: Signals, routed: bool = False) -> tuple[str, float | None]:
        if self.model is None:
            return "", None
        why, p = self.decline(self.model.probability(signals))
        return ("" if routed and not self.model.with_p_yes else why), p

    def decline(self, p: float) -> tuple[str, float]:
        return (f"P(answerable) {p:.2f} < {self.threshold}" if p < self.threshold else ""), p
