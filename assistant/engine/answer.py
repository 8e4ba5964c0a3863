"""Answering, evidence first: the orchestrator of the steps every engine shares.

    Retrieval (engine/retrieve.py) -> select evidence (evidence.py) -> gate (gate.py) -> write (write.py)
        -> check each sentence (support.py) and attribute it (attribute.py) -> Answer (build.py)

The small local model never ships a sentence on its own word: it reads a short list of numbered quotes and
names the ones that answer (or writes lines from them, each checked as it completes). The single-shot engine
(single_shot.py) feeds this one retrieval; the agentic engine (agent/) feeds it the passages its planner and
search loop gathered. Both decline, check and build answers here, the same way.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

from assistant.engine.asks import asks_for, decline_text, several_parts, unanswered
from assistant.engine.build import ABSTAIN_TEXT, AnswerBuilder, collect_verdicts
from assistant.engine.evidence import EvidenceSelector
from assistant.engine.gate import Gate, Signals, evidence_signals, model_for
from assistant.engine.passages import gate_messages
from assistant.engine.retrieve import Retrieval
from assistant.engine.support import SupportChecker
from assistant.engine.write import Draft, Writer, direct_basis, show_also
from assistant.llm.protocol import LLM, LLMError
from foundation.config import Settings
from foundation.types import Answer, AskEvent

__all__ = ["ABSTAIN_TEXT", "Answerer", "clean_question", "looks_like_abstention"]

PROMPTS = ("quotes_system", "quotes_user", "quote_paper", "quote_source", "quote", "quotes_gate", "support_system", "support")
PICK_PROMPTS = ("picks_system", "quotes_user", "quote_paper", "quote_source", "quote")
MAX_QUESTION_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_DECLINES = re.compile(r"\b(quotes?|passages?|papers?|context)\b.{0,40}\b(do(es)? not|don't|doesn't|no)\b"
                       r"|not (enough|sufficient) information|cannot (be )?answer|do not answer", re.I)


def clean_question(question: str | bytes) -> str:
    """The question as one line of text; bytes are read as UTF-8 (bad bytes replaced), control characters
    dropped. ValueError for an empty or an overlong question."""
    if isinstance(question, bytes):
        question = question.decode("utf-8", errors="replace")
    question = " ".join(_CONTROL.sub(" ", question).split())
    if not question:
        raise ValueError("empty question")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"question too long ({len(question)} characters; the limit is {MAX_QUESTION_CHARS})")
    return question


def looks_like_abstention(text: str) -> bool:
    """A model reply that declines ("The papers do not ..."), for pipelines without a gate (eval baseline)."""
    return bool(_DECLINES.search(text.strip().split("\n")[0][:200])) and len(text) < 400


@dataclass
class Answerer:
    """The shared steps, built once per question from the library's backends (or injected in tests)."""
    llm: LLM
    settings: Settings
    selector: EvidenceSelector
    checker: SupportChecker
    gate: Gate
    idf: Callable | None = None

    @classmethod
    def for_library(cls, library, llm: LLM, settings: Settings) -> "Answerer":
        idf = getattr(library.extra_indexes.get("bm25"), "idf", None)
        return cls(llm, settings, EvidenceSelector(library.embedder.embed_tokens, idf), SupportChecker(llm, settings),
                   Gate(model_for(llm.model), settings.answerability_threshold, settings.min_relevance), idf)

    def close(self) -> None:
        self.checker.close()

    @property
    def prompt(self) -> str:
        return "+".join(PICK_PROMPTS if self.settings.answer_style == "quotes" else PROMPTS)

    def provenance(self, engine: str, **extra: Any) -> dict[str, Any]:
        s = self.settings
        return {"engine": engine, "mode": s.retrieval_mode, "top_k": s.top_k,
                "quotes_budget_tokens": s.quotes_budget_tokens, "min_relevance": s.min_relevance,
                "answerability_threshold": s.answerability_threshold, "support_threshold": s.support_threshold,
                **extra}

    def stream(self, question: str, retrieval: Retrieval, queries: Sequence[str] = (),
               timings: dict[str, float] | None = None, provenance: dict[str, Any] | None = None,
               routed: bool = False) -> Iterator[AskEvent]:
        """Events: passages, quotes, tokens as generated, verdicts, then the final Answer. routed: the question
        is about one paper and `retrieval` was made within it (engine/route.py)."""
        timings = timings if timings is not None else {}
        build = AnswerBuilder(question, retrieval.hits, self.llm.model, self.prompt, queries,
                              provenance if provenance is not None else self.provenance("single-shot"), timings)
        build.relevance = retrieval.relevance
        hits = list(retrieval.hits)
        yield AskEvent(kind="passages", text=f"reading {len(hits)} passages", hits=tuple(hits))
        if not hits:
            yield _final(build.abstain("no passages were found"))
            return
        start = time.perf_counter()
        scored = self.selector.score(question, hits)
        quotes = self.selector.select(question, hits, self.settings.quotes_budget_tokens, scored=scored)
        f = scored.features
        signals = evidence_signals(question, quotes, self.idf, retrieval.relevance, retrieval.bm25_top,
                                   float(f["maxsim"].max()) if len(f) else 0.0,
                                   float(f["dense"].max()) if len(f) else 0.0)
        build.set_quotes(quotes)
        build.term_coverage = signals.term_coverage
        build.provenance = {**build.provenance, "signals": signals.as_dict()}
        timings["select_s"] = round(time.perf_counter() - start, 3)
        yield AskEvent(kind="quotes", text=f"{len(quotes)} quotes", quotes=tuple(quotes))
        if not quotes:
            yield _final(build.abstain("the passages hold no quotable sentence"))
            return
        why, p = self.gate.before_generation(retrieval.relevance, signals, routed)
        if why:
            yield _final(build.abstain(why, p))
            return
        yield from self._write_and_check(question, quotes, signals, build, timings, routed)

    def _write_and_check(self, question, quotes, signals: Signals, build: AnswerBuilder,
                         timings: dict[str, float], routed: bool) -> Iterator[AskEvent]:
        draft = Draft()
        p_yes: list[Future] = []  # the model's Yes/No on the quotes, asked once the answer's prompt is cached

        def ask_gate() -> None:
            if self.gate.asks_llm and callable(getattr(self.llm, "yes_probability", None)):
                p_yes.append(self.checker.run(self.llm.yes_probability, gate_messages(question, quotes, self.settings)))

        def gate_says_no() -> bool:
            if not p_yes or not p_yes[0].done():
                return False
            return bool(self.gate.after_generation(_with_p_yes(signals, p_yes))[0])

        writer = Writer(self.llm, self.settings, self.checker)
        yield from writer.write(question, quotes, draft, timings, on_first_token=ask_gate, stop=gate_says_no)
        start = time.perf_counter()
        picked = [n for line in draft.lines if line.verbatim for n in line.cited]
        lacking = ""
        picked_text = " ".join(quotes[n - 1].text for n in dict.fromkeys(picked))
        # The direct answer may restate the question's own names and terms ("In T5's comparison of pre-training
        # objectives, ..."): they count as given, like the paper's title; its numbers must still be in the quotes.
        given = f"{quotes[picked[0] - 1].title} {question}" if picked else ""
        basis = direct_basis(draft.direct, picked, quotes, given) if draft.direct and picked else []
        direct = self.checker.submit(draft.direct, " ".join(quotes[n - 1].text for n in basis), given) if basis else None
        signals = replace(_with_p_yes(signals, p_yes, wait=True), p_none=draft.p_none)
        build.provenance = {**build.provenance, "signals": signals.as_dict()}
        why, p = self.gate.after_generation(signals, routed)
        checked = collect_verdicts(draft, self.settings.unsupported == "remove")
        timings["verify_s"] = round(time.perf_counter() - start, 3)
        titles = " ".join(dict.fromkeys(q.title for q in quotes))
        if why:
            yield _final(build.abstain(why, p, checked.verdicts, draft))
        elif draft.none:  # the model's way out: no quote states the answer
            related = [q.n for q in sorted(quotes, key=lambda q: -q.score)]
            text = decline_text(question, " ".join(q.text for q in quotes), titles, "no quote states the answer")
            yield _final(build.decline(text, "the model found no quote that answers", related, p, checked.verdicts,
                                       draft))
        elif picked and (lacking := unanswered(question, "\n".join(quotes[n - 1].text for n in dict.fromkeys(picked)),
                                               [quotes[n - 1].title for n in dict.fromkeys(picked)])) \
                and not several_parts(question):
            text = decline_text(question, picked_text, titles, lacking)
            yield _final(build.decline(text, lacking, list(dict.fromkeys(picked)), p, checked.verdicts, draft))
        else:
            support = direct.result() if direct is not None else None
            if support is not None and support.supported:
                for n in basis[len(dict.fromkeys(picked)):]:  # the quote beyond the picks it rests on, shown too
                    yield from show_also(quotes[n - 1], draft)
                checked = collect_verdicts(draft, self.settings.unsupported == "remove")
            timings["verify_s"] = round(time.perf_counter() - start, 3)
            answer = build.from_draft(draft, checked, p, picked=self.settings.answer_style == "quotes",
                                      direct=(draft.direct, support))
            if picked and lacking:  # a question of several parts: the others answered, this one said to be missing
                note = f"(The quotes state no {asks_for(question).what}.)"
                answer = answer.model_copy(update={"text": f"{answer.text}\n\n{note}",
                                                   "settings": {**answer.settings, "missing": lacking}})
            yield _final(answer)


def _with_p_yes(signals: Signals, p_yes: list[Future], wait: bool = False) -> Signals:
    if not p_yes or (not wait and not p_yes[0].done()):
        return signals
    try:
        return replace(signals, p_yes=float(p_yes[0].result()))
    except LLMError:
        return signals


def _final(answer: Answer) -> AskEvent:
    return AskEvent(kind="answer", answer=answer)
