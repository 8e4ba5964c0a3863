"""Check every sentence of an answer against the passages it cites; drop or mark what they do not support.

Code first, model second (FACTS.md: the 0.5B judge says "supported" to false sentences, and both
models copy passages nearly word for word): a sentence whose words and numbers are plainly in a
passage it cites is supported without a model call; a sentence plainly in a passage it does not
cite gets that citation instead; only the rest goes to the model as a JSON-schema verdict, and even
then a "supported" needs the sentence's numbers to be in the passage and some of its words.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Sequence

from pydantic import BaseModel

from foundation.text import (content_words, markers_in, names_in, numbers_ok, overlap, place_markers, split_sentences,
                                 strip_markers)
from assistant.engine.cite import citation_for
from foundation.config import Settings
from assistant.engine.passages import format_passages, passage_text
from assistant.llm.structured import Budget, ask_json, schema_of
from assistant.llm.protocol import LLM, Message
from foundation.prompts import load_prompt
from foundation.types import Citation, Hit, Verdict

STRONG_OVERLAP = 0.6   # share of a sentence's content words found in a passage: supported without asking
WEAK_OVERLAP = 0.25    # below this a model's "supported" is not believed
MAX_CHECKS = 8         # model calls per answer; later sentences are left unchecked (supported=None)
CONCURRENCY = 4
VERIFY_MAX_TOKENS = 40
UNSUPPORTED_MARK = "[unsupported]"
COVERAGE = re.compile(
    r"(do(es)?|did) not (answer|say|report|mention|give|state|cover|provide|specify)|no (information|mention)"
    r"|not (enough|sufficient) information|the (indexed )?papers do not", re.IGNORECASE)


class VerifyReply(BaseModel):
    passage: int = 0
    supported: bool = False


VERIFY_SCHEMA = schema_of(VerifyReply, "verify")


@dataclass
class Checked:
    sentence: str                 # without markers
    cited: list[int]              # passage numbers (1-based into the answer's passages) after checking
    supported: bool | None
    note: str = ""


@dataclass
class Verification:
    text: str
    citations: list[Citation]
    verdicts: list[Verdict]
    removed: list[str] = field(default_factory=list)
    checks: int = 0
    seconds: float = 0.0

    @property
    def n_supported(self) -> int:
        return sum(v.supported is True for v in self.verdicts)


def names_ok(sentence: str, hit: Hit) -> bool:
    """Every name of the sentence appears in the passage or its paper's title: catches a small model
    putting the question's subject (a model not in the papers) into a sentence copied from another one."""
    haystack = f"{passage_text(hit)} {hit.paper_title}".lower()
    return all(name in haystack for name in names_in(sentence))


def grounded(sentence: str, hit: Hit) -> str:
    """'' when the sentence's numbers and names are in the passage, else why not."""
    if not numbers_ok(sentence, passage_text(hit)):
        return "numbers not found"
    missing = sorted(n for n in names_in(sentence) if n not in f"{passage_text(hit)} {hit.paper_title}".lower())
    return f"names not found ({', '.join(missing)})" if missing else ""


def verify_messages(sentence: str, candidates: Sequence[Hit], settings: Settings) -> list[Message]:
    system = load_prompt("verify_system", settings.prompts_dir).render()
    user = load_prompt("verify", settings.prompts_dir).render(passages=format_passages(candidates, settings),
                                                             sentence=sentence)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def precheck(sentence: str, cited: list[int], hits: Sequence[Hit]) -> Checked | None:
    """A verdict from code alone when the evidence is plain; None when the model must be asked."""
    if COVERAGE.search(sentence):
        return Checked(sentence, cited, None, "a statement about what the papers cover")
    if len(content_words(sentence)) < 3:
        return Checked(sentence, cited, None, "too short to check")
    scored = sorted(((overlap(sentence, passage_text(hits[n - 1])), n) for n in cited), reverse=True)
    if scored and scored[0][0] >= STRONG_OVERLAP and not grounded(sentence, hits[scored[0][1] - 1]):
        return Checked(sentence, cited, True, f"words found in [{scored[0][1]}] ({scored[0][0]:.2f})")
    others = sorted(((overlap(sentence, passage_text(h)), i + 1) for i, h in enumerate(hits) if i + 1 not in cited),
                    reverse=True)
    if others and others[0][0] >= STRONG_OVERLAP and not grounded(sentence, hits[others[0][1] - 1]):
        n = others[0][1]
        was = "".join(f"[{c}]" for c in cited) or "no citation"
        return Checked(sentence, [n], True, f"citation {was} replaced by [{n}] ({others[0][0]:.2f})")
    return None


def candidates_for(sentence: str, cited: list[int], hits: Sequence[Hit], extra: int = 2) -> list[int]:
    """The cited passages plus the best-overlapping others, so a wrong citation can be replaced."""
    others = sorted((i + 1 for i in range(len(hits)) if i + 1 not in cited),
                    key=lambda n: overlap(sentence, passage_text(hits[n - 1])), reverse=True)
    return [*cited[:3], *others[:extra]]


async def check_with_model(sentence: str, cited: list[int], hits: Sequence[Hit], llm: LLM, settings: Settings,
                           budget: Budget | None) -> Checked:
    cands = candidates_for(sentence, cited, hits)
    result = await ask_json(llm, verify_messages(sentence, [hits[n - 1] for n in cands], settings), VerifyReply,
                            VERIFY_SCHEMA, max_tokens=VERIFY_MAX_TOKENS, budget=budget, name="verify")
    reply = result.value
    if reply is None:
        return Checked(sentence, cited, None, f"not checked: {result.error}")
    if not reply.supported or not 1 <= reply.passage <= len(cands):
        return Checked(sentence, cited, False, "the model found no passage that states it")
    n = cands[reply.passage - 1]
    text = passage_text(hits[n - 1])
    if overlap(sentence, text) < WEAK_OVERLAP:
        return Checked(sentence, cited, False, f"the model said [{n}] supports it, but they share few words")
    why = grounded(sentence, hits[n - 1])
    if why:
        return Checked(sentence, cited, False, f"{why} in [{n}]")
    if n in cited:
        return Checked(sentence, cited, True, f"the model found it in [{n}]")
    was = "".join(f"[{c}]" for c in cited) or "no citation"
    return Checked(sentence, [n], True, f"citation {was} replaced by [{n}] (model)")


async def averify(text: str, hits: Sequence[Hit], llm: LLM, settings: Settings, budget: Budget | None = None,
                  on_verdict=None) -> Verification:
    """Verify an answer whose [n] markers point into `hits`; rebuild its text and citations from the verdicts."""
    start = time.perf_counter()
    parsed: list[tuple[str, list[int]]] = []
    for sentence in split_sentences(text):
        cited = [n for n in dict.fromkeys(markers_in(sentence)) if 1 <= n <= len(hits)]
        bare = strip_markers(sentence)
        if bare:
            parsed.append((bare, cited))
    checked: list[Checked | None] = [precheck(s, c, hits) if hits else Checked(s, c, None, "no passages")
                                     for s, c in parsed]
    todo = [i for i, c in enumerate(checked) if c is None]
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        sentence, cited = parsed[i]
        if todo.index(i) >= MAX_CHECKS:
            checked[i] = Checked(sentence, cited, None, "not checked: too many sentences")
        else:
            async with sem:
                checked[i] = await check_with_model(sentence, cited, hits, llm, settings, budget)
        if on_verdict is not None:
            on_verdict(checked[i])

    for i, c in enumerate(checked):
        if c is not None and on_verdict is not None:
            on_verdict(c)
    await asyncio.gather(*(one(i) for i in todo))
    return rebuild([c for c in checked if c is not None], hits, settings, len(todo), time.perf_counter() - start)


def rebuild(checked: Sequence[Checked], hits: Sequence[Hit], settings: Settings, checks: int,
            seconds: float) -> Verification:
    out, removed, verdicts = [], [], []
    cited_first: dict[int, str] = {}
    for c in checked:
        verdicts.append(Verdict(sentence=c.sentence, citations=tuple(c.cited), supported=c.supported, note=c.note))
        if c.supported is False and settings.unsupported == "remove":
            removed.append(c.sentence)
            continue
        markers = [] if c.supported is False else c.cited
        for n in markers:
            cited_first.setdefault(n, c.sentence)
        out.append(_with_markers(c.sentence, markers, mark=c.supported is False))
    citations = [citation_for(n, hits[n - 1], s) for n, s in sorted(cited_first.items())]
    return Verification(" ".join(out), citations, verdicts, removed, checks, round(seconds, 3))


def _with_markers(sentence: str, markers: Sequence[int], mark: bool = False) -> str:
    tail = "".join(f"[{n}]" for n in markers) + (f" {UNSUPPORTED_MARK}" if mark else "")
    if not tail:
        return sentence
    return place_markers(sentence, tail.strip(), end="")
