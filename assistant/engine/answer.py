"""Single-shot answering: passages -> prompt -> local model -> checked citations, or an honest abstention."""
from __future__ import annotations

import re
import time
from typing import Iterator, Sequence

from assistant.engine.cite import attach_citations, drop_restatements
from assistant.core.config import Settings
from assistant.engine.gate import answerability
from assistant.llm.protocol import LLM, LLMError
from assistant.engine.passages import answer_messages
from assistant.core.types import Answer, AskEvent, Hit

ABSTAIN_TEXT = "The indexed papers do not answer this question."
ABSTAIN_PATTERNS = re.compile(
    r"(do(es)? not|don't|doesn't|cannot|can't|not) (answer|contain|provide|mention|address|specify|say|include)"
    r"|no (information|mention|answer)|not (enough|sufficient) information|unable to (answer|find)",
    re.IGNORECASE,
)
ANSWER_PROMPTS = ("answer_system", "answer_user")
MAX_QUESTION_CHARS = 2000


def looks_like_abstention(text: str) -> bool:
    head = text.strip().split("\n")[0][:200]
    return bool(ABSTAIN_PATTERNS.search(head)) and len(text) < 400


def clean_question(question: str) -> str:
    question = " ".join(question.split())
    if not question:
        raise ValueError("empty question")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"question too long ({len(question)} characters; the limit is {MAX_QUESTION_CHARS})")
    return question


def abstention(question: str, hits: Sequence[Hit], reason: str, *, settings: dict, model: str,
               timings: dict[str, float], queries: Sequence[str]) -> Answer:
    return Answer(question=question, text=ABSTAIN_TEXT, abstained=True, passages=tuple(hits), model=model,
                  settings={**settings, "abstain_reason": reason}, timings=timings, queries=tuple(queries))


def stream_answer(question: str, hits: Sequence[Hit], llm: LLM, settings: Settings, relevance: float,
                  queries: Sequence[str] = (), timings: dict[str, float] | None = None) -> Iterator[AskEvent]:
    """Events: passages, tokens as generated, then the final Answer (also on a broken stream, marked partial)."""
    timings = dict(timings or {})
    run_settings = {"mode": settings.retrieval_mode, "top_k": settings.top_k, "min_relevance": settings.min_relevance,
                    "relevance": round(relevance, 4), "hyde": settings.hyde,
                    "answer_gate": settings.answer_gate}
    yield AskEvent(kind="passages", text=f"reading {len(hits)} passages", hits=tuple(hits))
    if not hits or relevance < settings.min_relevance:
        yield AskEvent(kind="answer", answer=abstention(
            question, hits, f"best passage relevance {relevance:.2f} < {settings.min_relevance}",
            settings=run_settings, model=llm.model, timings=timings, queries=tuple(queries)))
        return
    gate = answerability(question, hits, llm, settings)
    if gate.score is not None:
        run_settings["answerability"] = gate.score
        timings["gate_s"] = gate.seconds
    if gate.closed(settings.answer_gate):
        yield AskEvent(kind="answer", answer=abstention(
            question, hits, f"the model judged the passages do not answer (P(yes) {gate.score:.2f} < "
            f"{settings.answer_gate})", settings=run_settings, model=llm.model, timings=timings, queries=tuple(queries)))
        return
    messages = answer_messages(question, hits, settings)
    start = time.perf_counter()
    pieces: list[str] = []
    partial = False
    error = ""
    try:
        for piece in llm.stream(messages, max_tokens=settings.llm_max_tokens, temperature=settings.llm_temperature):
            if not pieces:
                timings["first_token_s"] = round(time.perf_counter() - start, 3)
            pieces.append(piece)
            yield AskEvent(kind="token", text=piece)
    except LLMError as exc:
        partial, error = True, str(exc)
        yield AskEvent(kind="error", text=f"generation stopped: {exc}")
    timings["generate_s"] = round(time.perf_counter() - start, 3)
    raw = "".join(pieces).strip()
    if not partial and (not raw or looks_like_abstention(raw)):
        yield AskEvent(kind="answer", answer=abstention(
            question, hits, "the model found no answer in the passages", settings=run_settings,
            model=llm.model, timings=timings, queries=tuple(queries)))
        return
    yield AskEvent(kind="status", text="checking citations")
    text, citations = attach_citations(drop_restatements(raw), hits)
    if error:
        run_settings["error"] = error
    yield AskEvent(kind="answer", answer=Answer(
        question=question, text=text, citations=tuple(citations), passages=tuple(hits), model=llm.model,
        prompt="+".join(ANSWER_PROMPTS), queries=tuple(queries) or (question,), settings=run_settings,
        timings=timings, partial=partial))
