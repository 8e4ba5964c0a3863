"""The write step: the model turns numbered quotes into answer lines, each sentence sent to the checker as its
line completes.

Two styles (settings.answer_style). "quotes", the default: the model names the quotes that answer, a few
tokens, and each picked quote is shown verbatim the moment its number is written (on 2 CPU cores the written
lines were near-copies of the quotes that took ~15 s more to decode: README, "Answering"); "[0]" says no quote
answers. With settings.direct_answer it then writes one short sentence that answers the question from its
picks, which the checker must pass before it is shown above them. "lines": the model writes up to three lines
"[n] sentence", each checked against its quote while the model writes the next.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from assistant.engine.attribute import attribute
from assistant.engine.passages import pick_messages, quote_messages, shown_source
from assistant.engine.support import Support, SupportChecker, grounding_problem
from assistant.llm.protocol import LLM, LLMError, without_candidates
from foundation.config import Settings
from foundation.text import (content_words, is_prose, markers_in, overlap, split_sentences, strip_markers,
                             without_heading)
from foundation.types import AskEvent, Quote

MAX_PICKS = 3  # as many quotes as the written style has lines
PICKED_WORDS = 150  # a picked quote is shown whole (the model read all of it); the limit only stops a runaway
PICK_MAX_TOKENS = 16  # "[4][1][7]" is 9 tokens
DIRECT_MAX_TOKENS = 80  # one sentence of ~25 words asked; the model writes up to ~45 (dev), room to finish it
DIRECT_MAX_WORDS = 50  # a longer "sentence" is the model running on: cut at the last full stop within it
OPEN_PICK = re.compile(r"\[(\d+)$")  # a pick whose number is written and whose "]" is not yet
PICK_ALSO = 0.2  # README sample question: P(first pick) 0.40 for a quote naming the scaling, 0.24 for the reason
# A line the model writes about the quotes rather than from them ("The quotes do not say ...").
ABOUT_THE_QUOTES = re.compile(r"\b(quotes?|passages?|papers?|context)\b.{0,40}\b(do(es)? not|don't|doesn't|no)\b"
                              r"|not (enough|sufficient) information|cannot (be )?answer", re.I)
# The model copying a quote's header ("Title, Section, p. 7: \"..."): titles hold colons ("LLaMA: Open and ..."),
# so the long form is anchored on its ", p. N:" ending; the short form is a bare page ("7: ...").
QUOTE_HEADER = re.compile(r'^\s*(?:[^"\n]{0,300}?,\s*pp?\.\s*\d+(?:\s*[-\u2013]\s*\d+)?\s*:\s*'
                          r'|(?:[^:"\n]{0,160},\s*)?(?:pp?\.\s*)?\d+(?:\s*[-\u2013]\s*\d+)?\s*:\s*)')
SENTENCE_START = re.compile(r"[A-Z0-9\u201c\"(]|[a-z]{1,2}[A-Z]")  # also "vLLM ...", "mBERT ..."


@dataclass
class Line:
    """One answer line, split into sentences, with its support checks under way."""
    cited: list[int]
    sentences: list[str]
    checks: list[Future | Support] = field(default_factory=list)
    verbatim: bool = False  # a picked quote's own sentences (answer_style "quotes")


@dataclass
class Draft:
    """What the write step produced: the lines, the model's raw reply, and what failed."""
    lines: list[Line] = field(default_factory=list)
    raw: str = ""
    error: str = ""
    none: bool = False          # the model said no quote answers ("[0]")
    p_none: float | None = None  # its probability of "0" at the first pick (None: no log-probabilities)
    direct: str = ""            # the one-sentence answer written after the picks (unchecked)
    shown: list[int] = field(default_factory=list)  # quote numbers in the order their lines were shown

    def number(self, n: int) -> int:
        """The marker a quote gets in the answer: its place in the order shown ([1] first)."""
        if n not in self.shown:
            self.shown.append(n)
        return self.shown.index(n) + 1

    @property
    def verbatim(self) -> bool:
        return bool(self.lines) and all(line.verbatim for line in self.lines)


class Writer:
    """Runs one style over the quotes; `on_first_token` fires once the server has the prompt in its cache."""

    def __init__(self, llm: LLM, settings: Settings, checker: SupportChecker):
        self.llm, self.settings, self.checker = llm, settings, checker

    def write(self, question: str, quotes: Sequence[Quote], draft: Draft, timings: dict[str, float],
              on_first_token: Callable[[], None] = lambda: None,
              stop: Callable[[], bool] = lambda: False) -> Iterator[AskEvent]:
        if self.settings.answer_style == "quotes":
            yield from self.pick(question, quotes, draft, timings)
        else:
            yield from self.lines(question, quotes, draft, timings, on_first_token, stop)

    # --- answer_style "quotes"
    def pick(self, question: str, quotes: Sequence[Quote], draft: Draft, timings: dict[str, float]) -> Iterator[AskEvent]:
        """The model names the quotes that answer, best first; each is shown verbatim as soon as its number is
        written (the first token a user sees). Where it hesitated over its first pick, a quote it gave at least
        PICK_ALSO of its weight is shown after its picks. A reply without a usable number leaves no line."""
        s = self.settings
        start = time.perf_counter()
        direct = s.direct_answer
        extra = {"structured_outputs": {"regex": picks_regex(len(quotes), direct)}} if s.answer_lines_regex else None
        messages = pick_messages(question, quotes, s)
        max_tokens = PICK_MAX_TOKENS + (DIRECT_MAX_TOKENS if direct else 0)
        ask = getattr(self.llm, "stream_choices", None)
        if callable(ask):
            pieces = ask(messages, max_tokens=max_tokens, temperature=s.llm_temperature, extra_body=extra)
        else:  # a backend without log-probabilities: its picks alone
            pieces = without_candidates(self.llm.stream(messages, max_tokens=max_tokens,
                                                        temperature=s.llm_temperature, extra_body=extra))
        picked: list[int] = []
        steps: list[dict[str, float]] = []
        try:
            for piece, candidates in pieces:
                before = draft.raw
                draft.raw += piece
                if "\n" not in before:  # the picks line, still being written
                    steps.extend(candidates)
                    picks_line = draft.raw.split("\n", 1)[0]
                    if re.match(r"\s*\[0\]", picks_line):
                        draft.none = True
                        break  # no quote answers: a sentence after it would answer anyway
                    for n in new_picks(picks_line, len(quotes), picked):
                        picked.append(n)
                        timings.setdefault("first_token_s", round(time.perf_counter() - start, 3))
                        yield from quote_line(quotes[n - 1], draft)
                if "\n" in draft.raw:  # the direct answer, streamed as written
                    written = draft.raw.split("\n", 1)[1]
                    new = written[len(before.split("\n", 1)[1]) if "\n" in before else 0:]
                    if new:
                        yield AskEvent(kind="token", text=new)
                    if len(written.split()) > DIRECT_MAX_WORDS:
                        break
        except LLMError as exc:
            draft.error = str(exc)
            yield AskEvent(kind="error", text=f"generation stopped: {exc}")
        finally:
            pieces.close()  # closes the connection: the server stops generating
        draft.p_none = none_probability(steps)
        if "\n" in draft.raw and direct:
            draft.direct = one_sentence(draft.raw.split("\n", 1)[1])
        if not draft.none:
            for n in hesitations(steps, len(quotes)):
                if n not in picked and len(picked) < MAX_PICKS:
                    picked.append(n)
                    yield from quote_line(quotes[n - 1], draft)
        timings["generate_s"] = round(time.perf_counter() - start, 3)
        timings.setdefault("first_token_s", timings["generate_s"])

    # --- answer_style "lines"
    def lines(self, question: str, quotes: Sequence[Quote], draft: Draft, timings: dict[str, float],
              on_first_token: Callable[[], None], stop: Callable[[], bool]) -> Iterator[AskEvent]:
        s = self.settings
        buffer = ""
        start = time.perf_counter()
        extra = {"structured_outputs": {"regex": lines_regex(len(quotes))}} if s.answer_lines_regex else None
        stream = self.llm.stream(quote_messages(question, quotes, s), max_tokens=s.llm_max_tokens,
                                 temperature=s.llm_temperature, extra_body=extra)
        try:
            for piece in stream:
                if "first_token_s" not in timings:
                    timings["first_token_s"] = round(time.perf_counter() - start, 3)
                    on_first_token()
                draft.raw += piece
                buffer += piece
                yield AskEvent(kind="token", text=piece)
                while "\n" in buffer:
                    line, buffer = buffer.split("\n", 1)
                    yield from self.add_line(line, quotes, draft)
                if stop():
                    yield AskEvent(kind="status", text="the quotes do not answer the question: stopping")
                    break
        except LLMError as exc:
            draft.error = str(exc)
            yield AskEvent(kind="error", text=f"generation stopped: {exc}")
        finally:
            stream.close()  # closes the connection: the server stops generating
        yield from self.add_line(buffer, quotes, draft)
        timings["generate_s"] = round(time.perf_counter() - start, 3)

    def add_line(self, text: str, quotes: Sequence[Quote], draft: Draft) -> Iterator[AskEvent]:
        cited = [n for n in dict.fromkeys(markers_in(text)) if 1 <= n <= len(quotes)]
        bare = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", strip_markers(text))
        bare = QUOTE_HEADER.sub("", bare).strip().strip('"\u201c\u201d').strip()  # the model copying "p. 7: \"..."
        bare = without_heading(bare, headings(quotes))
        sentences = [x for x in split_sentences(bare) if len(content_words(x)) >= 2 and len(x.split()) >= 4]
        if not sentences:
            return
        cited = attribute(bare, cited, quotes)
        line = Line(cited, sentences)
        for sentence in sentences:
            if ABOUT_THE_QUOTES.search(sentence) or not cited:
                line.checks.append(Support(False, 0.0, "says nothing from a quote" if cited else "cites no quote"))
                continue
            line.checks.append(self.checker.submit(sentence, " ".join(quotes[n - 1].text for n in cited),
                                                   quotes[cited[0] - 1].title))
        draft.lines.append(line)
        yield AskEvent(kind="verify", text=f"checking: {sentences[0][:80]}")


def headings(quotes: Sequence[Quote]) -> list[str]:
    """The source lines shown above the quotes, whole and in parts: a line must not start with one."""
    shown = [shown_source(q) for q in quotes]
    return [h for title, section in shown for h in (title, section, f"{title}, {section}")]


def quote_line(quote: Quote, draft: Draft) -> Iterator[AskEvent]:
    """A picked quote as an answer line: its sentences verbatim, so each holds what it cites by construction."""
    # The paper's own reference numbers ("... larger values of dk [3].") would read as citations of quotes.
    sentences = [strip_markers(x) for x in quotable_sentences(quote.text, limit=PICKED_WORDS)]
    if not sentences:
        return
    checks: list[Future | Support] = [Support(True, 1.0, "the quote itself") for _ in sentences]
    draft.lines.append(Line([quote.n], sentences, checks, verbatim=True))
    yield AskEvent(kind="token", text=quoted(draft.number(quote.n), sentences) + " ")


def direct_basis(sentence: str, picked: Sequence[int], quotes: Sequence[Quote], given: str = "") -> list[int]:
    """The quotes the direct answer is checked against: its picks, and where they lack one of its numbers, names
    or terms, the one other quote (of those the model read) that supplies it. The small model picks three quotes
    and then answers from a fourth ("cosine-distance" from a quote it did not pick): 7 of 10 dev answers that
    showed no direct answer failed only so."""
    basis = list(dict.fromkeys(picked))
    held = " ".join(quotes[n - 1].text for n in basis)
    if not basis or not grounding_problem(sentence, held, given):
        return basis
    others = sorted((q for q in quotes if q.n not in basis), key=lambda q: -overlap(sentence, q.text))
    for quote in others:
        if not grounding_problem(sentence, f"{held} {quote.text}", given):
            return [*basis, quote.n]
    return basis


def show_also(quote: Quote, draft: Draft) -> Iterator[AskEvent]:
    """Adds a quote the direct answer rests on to the quotes shown, within MAX_PICKS: the last quote shown (the
    model's weakest pick) makes room for it."""
    shown = [n for n in draft.shown if any(line.cited == [n] for line in draft.lines)]
    if len(shown) >= MAX_PICKS:
        draft.lines = [line for line in draft.lines if line.cited != [shown[-1]]]
        draft.shown.remove(shown[-1])
    yield from quote_line(quote, draft)


def new_picks(raw: str, n_quotes: int, picked: list[int]) -> list[int]:
    """Quote numbers the reply has written since the last look. One still open counts once no shown quote's
    number starts with it: of 6 quotes, "[4" is 4, a token before its "]"; "[1" of 12 may yet be "[12]"."""
    written = markers_in(raw)
    trailing = OPEN_PICK.search(raw)
    if trailing and int(trailing.group(1)) * 10 > n_quotes:
        written.append(int(trailing.group(1)))
    fresh = [n for n in dict.fromkeys(written) if 1 <= n <= n_quotes and n not in picked]
    return fresh[:max(0, MAX_PICKS - len(picked))]


def lines_regex(n_quotes: int, max_lines: int = 3) -> str:
    """Up to `max_lines` lines, each "[n] Text" with n a quote shown: the model cannot write a line that cites
    nothing, nor cite a quote it was not given. (A bounded repeat of a bounded run made vLLM's regex compiler
    time out; unbounded runs compile at once.)"""
    marker = r"\[(?:" + "|".join(str(n) for n in range(1, n_quotes + 1)) + r")\]"
    line = marker + r" [A-Z][^\n\[\]]*"
    return f"{line}(?:\\n{line}){{0,{max_lines - 1}}}"


def picks_regex(n_quotes: int, direct: bool = False) -> str:
    """"[0]" (no quote answers), or one to MAX_PICKS quote numbers, "[4][1]": the model can name only quotes it
    was shown; with `direct`, the picks are followed by a line that answers in one sentence."""
    marker = r"\[(?:" + "|".join(str(n) for n in range(1, n_quotes + 1)) + r")\]"
    picks = f"{marker}(?:{marker}){{0,{MAX_PICKS - 1}}}"
    return r"\[0\]|" + picks + (r"\n[A-Za-z0-9(][^\n\[\]]*" if direct else "")


def none_probability(steps: Sequence[dict[str, float]]) -> float | None:
    """P("0") where the model wrote its first quote number: how much it leaned to "no quote answers"."""
    first = next((step for step in steps if step and max(step, key=step.__getitem__).strip().isdigit()), None)
    if first is None:
        return None
    return float(sum(p for t, p in first.items() if t.strip() == "0"))


def one_sentence(text: str) -> str:
    """The direct answer as one sentence: the first complete sentence of what the model wrote, within
    DIRECT_MAX_WORDS; '' when it was cut off before its full stop (a sentence broken off mid-clause, "for a
    maximum of", is no answer)."""
    text = " ".join(text.split())
    sentences = split_sentences(text)
    first = sentences[0].strip() if sentences else ""
    if len(first.split()) > DIRECT_MAX_WORDS or not first.endswith((".", "!", "?")):
        return ""
    return first


def hesitations(steps: Sequence[dict[str, float]], n_quotes: int) -> list[int]:
    """Quote numbers the model gave at least PICK_ALSO of its weight at its first pick, likeliest first. Qwen
    writes numbers digit by digit, so "1" there may begin "10"; quote 1 is then the reading (the best-scored)."""
    first = next((step for step in steps if step and max(step, key=step.__getitem__).strip().isdigit()), {})
    weights = {int(t.strip()): p for t, p in first.items() if t.strip().isdigit() and 1 <= int(t.strip()) <= n_quotes}
    return [n for n, p in sorted(weights.items(), key=lambda x: -x[1]) if p >= PICK_ALSO]


def quoted(n: int, sentences: Sequence[str]) -> str:
    """Sentences of quote n in quotation marks, each cited on its own (every sentence carries its citation)."""
    return " ".join(f"\u201c{sentence}\u201d [{n}]" for sentence in sentences)


def quotable_sentences(text: str, limit: int = 60) -> list[str]:
    """A quote's sentences up to about `limit` words: an extract to read, not a page (each quoted and cited on
    its own, so every sentence of the answer carries its citation)."""
    out: list[str] = []
    for sentence in split_sentences(text):
        if (len(sentence.split()) < 6 or sentence.rstrip().endswith("?") or not is_prose(sentence)
                or not SENTENCE_START.match(sentence)):
            continue  # a heading, a question the paper asks itself, or a sentence cut at the chunk's start
        if out and sum(len(x.split()) for x in out) + len(sentence.split()) > limit:
            break
        out.append(sentence)
    return out
