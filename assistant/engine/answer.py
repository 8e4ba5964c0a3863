"""Single-shot answering, evidence first: quotes -> constrained lines -> every sentence checked -> an Answer.

The small local model never ships a sentence on its own word. It reads a short list of numbered quotes
(engine/evidence.py) and writes lines that start with the quote they come from; each sentence is checked
against that quote as soon as its line is complete (engine/support.py), while the model writes the next.
Once the first token shows the prompt is in the server's prefix cache, the answerability gate
(engine/gate.py) asks the model one Yes/No question over the same prefix, nearly for free. The answer is
the supported sentences; when none survive but the evidence is strong, the best quotes themselves;
when the gate says the papers do not answer, an abstention that records why.
With answer_style "quotes" (the default) the model only names the quotes that answer, a few tokens instead of
~80, and the answer is those quotes verbatim: on 2 CPU cores the written lines were near-copies of the quotes
that took ~15 s more to decode (README, "Answering").
"""
from __future__ import annotations

import re
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

from foundation.config import Settings
from foundation.text import (content_words, is_prose, markers_in, overlap, place_markers, restates, split_sentences,
                                 strip_markers, without_heading)
from foundation.types import Answer, AskEvent, Citation, Hit, Quote, Verdict
from assistant.engine.evidence import EvidenceSelector
from assistant.engine.gate import AnswerabilityModel, Signals, evidence_signals
from assistant.engine.passages import gate_messages, pick_messages, quote_messages, shown_source
from assistant.engine.support import Support, SupportChecker
from assistant.llm.protocol import LLM, LLMError, without_candidates

ABSTAIN_TEXT = "The indexed papers do not answer this question."
PROMPTS = ("quotes_system", "quotes_user", "quote_paper", "quote_source", "quote", "quotes_gate", "support_system", "support")
PICK_PROMPTS = ("picks_system", "quotes_user", "quote_paper", "quote_source", "quote")
MAX_PICKS = 3  # as many quotes as the written style has lines
PICKED_WORDS = 150  # a picked quote is shown whole (the model read all of it); the limit only stops a runaway
PICK_MAX_TOKENS = 16  # "[4][1][7]" is 9 tokens
OPEN_PICK = re.compile(r"\[(\d+)$")  # a pick whose number is written and whose "]" is not yet
PICK_ALSO = 0.2  # README sample question: P(first pick) 0.40 for a quote naming the scaling, 0.24 for the reason
MAX_QUESTION_CHARS = 2000
# A line the model writes about the quotes rather than from them ("The quotes do not say ...").
ABOUT_THE_QUOTES = re.compile(r"\b(quotes?|passages?|papers?|context)\b.{0,40}\b(do(es)? not|don't|doesn't|no)\b"
                              r"|not (enough|sufficient) information|cannot (be )?answer", re.I)
ALIGN_MIN = 0.6  # a line without a marker is attributed to the quote holding this share of its words
COPIED_MIN = 0.9  # a line holding this share of another quote's words was copied from that quote
EXTRACTIVE_QUOTES = 2
# The model copying a quote's header ("Title, Section, p. 7: \"..."): titles hold colons ("LLaMA: Open and ..."),
# so the long form is anchored on its ", p. N:" ending; the short form is a bare page ("7: ...").
QUOTE_HEADER = re.compile(r'^\s*(?:[^"\n]{0,300}?,\s*pp?\.\s*\d+(?:\s*[-\u2013]\s*\d+)?\s*:\s*'
                          r'|(?:[^:"\n]{0,160},\s*)?(?:pp?\.\s*)?\d+(?:\s*[-\u2013]\s*\d+)?\s*:\s*)')
SENTENCE_START = re.compile(r"[A-Z0-9\u201c\"(]|[a-z]{1,2}[A-Z]")  # also "vLLM ...", "mBERT ..."
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


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
    head = text.strip().split("\n")[0][:200]
    return bool(ABOUT_THE_QUOTES.search(head) or "do not answer" in head.lower()) and len(text) < 400


@dataclass
class Line:
    """One generated line, split into sentences, with its support checks under way."""
    cited: list[int]
    sentences: list[str]
    checks: list[Future | Support] = field(default_factory=list)
    verbatim: bool = False  # a picked quote's own sentences (answer_style "quotes")


@dataclass
class Evidence:
    """What retrieval gave the answerer: passages best first, and the signals the gate reads."""
    hits: Sequence[Hit]
    relevance: float
    bm25_top: float = 0.0


class QuoteAnswerer:
    """gate: the fitted answerability model (engine/gate.py model_for); None decides by relevance alone."""

    def __init__(self, llm: LLM, settings: Settings, selector: EvidenceSelector, checker: SupportChecker, idf=None,
                 gate: AnswerabilityModel | None = None):
        self.llm, self.settings, self.selector, self.checker, self.idf = llm, settings, selector, checker, idf
        self.gate_model = gate

    def stream(self, question: str, evidence: Evidence, queries: Sequence[str] = (),
               timings: dict[str, float] | None = None) -> Iterator[AskEvent]:
        """Events: passages, quotes, tokens as generated, verdicts, then the final Answer."""
        run = _Run(self, question, evidence, tuple(queries) or (question,), dict(timings or {}))
        yield from run.events()


class _Run:
    """One question's way through the answerer; builds the Answer with its provenance."""

    def __init__(self, owner: QuoteAnswerer, question: str, evidence: Evidence, queries: tuple[str, ...],
                 timings: dict[str, float]):
        self.o, self.question, self.evidence, self.queries, self.timings = owner, question, evidence, queries, timings
        self.settings = owner.settings
        self.quotes: list[Quote] = []
        self.signals: Signals | None = None
        self.lines: list[Line] = []
        self.raw = ""
        self.error = ""
        self.gate: Future | None = None  # the model's Yes/No on the quotes, asked once the answer's prompt is cached

    def events(self) -> Iterator[AskEvent]:
        hits = list(self.evidence.hits)
        yield AskEvent(kind="passages", text=f"reading {len(hits)} passages", hits=tuple(hits))
        if not hits:
            yield self.final(self.abstain("no passages were found"))
            return
        start = time.perf_counter()
        scored = self.o.selector.score(self.question, hits)
        self.quotes = self.o.selector.select(self.question, hits, self.settings.quotes_budget_tokens, scored=scored)
        f = scored.features
        self.signals = evidence_signals(self.question, self.quotes, self.o.idf, self.evidence.relevance,
                                        self.evidence.bm25_top, float(f["maxsim"].max()) if len(f) else 0.0,
                                        float(f["dense"].max()) if len(f) else 0.0)
        self.timings["select_s"] = round(time.perf_counter() - start, 3)
        yield AskEvent(kind="quotes", text=f"{len(self.quotes)} quotes", quotes=tuple(self.quotes))
        if not self.quotes:
            yield self.final(self.abstain("the passages hold no quotable sentence"))
            return
        if self.evidence.relevance < self.settings.min_relevance:  # off-topic: no model call at all
            yield self.final(self.abstain(f"best passage relevance {self.evidence.relevance:.2f} < "
                                          f"{self.settings.min_relevance}"))
            return
        model = self.o.gate_model
        if model is not None and not model.with_p_yes:  # the gate needs no model call: decide before generating
            declined = self.declined(model.probability(self.signals))
            if declined is not None:
                yield self.final(declined)
                return
        yield from self.generate()
        yield self.final(self.decide())

    # --- generation, with the gate and the checks running beside it
    def generate(self) -> Iterator[AskEvent]:
        if self.settings.answer_style == "quotes":
            yield from self.pick()
            return
        o, s = self.o, self.settings
        model = o.gate_model
        wants_gate = model is not None and model.with_p_yes and callable(getattr(o.llm, "yes_probability", None))
        buffer = ""
        start = time.perf_counter()
        extra = {"structured_outputs": {"regex": lines_regex(len(self.quotes))}} if s.answer_lines_regex else None
        stream = o.llm.stream(quote_messages(self.question, self.quotes, s), max_tokens=s.llm_max_tokens,
                              temperature=s.llm_temperature, extra_body=extra)
        try:
            for piece in stream:
                if "first_token_s" not in self.timings:
                    self.timings["first_token_s"] = round(time.perf_counter() - start, 3)
                    if wants_gate:  # the prompt is cached now: the gate's prefill is a few tokens
                        self.gate = o.checker.run(o.llm.yes_probability, gate_messages(self.question, self.quotes, s))
                self.raw += piece
                buffer += piece
                yield AskEvent(kind="token", text=piece)
                while "\n" in buffer:
                    line, buffer = buffer.split("\n", 1)
                    yield from self.add_line(line)
                if self.gate_says_no():
                    yield AskEvent(kind="status", text="the quotes do not answer the question: stopping")
                    break
        except LLMError as exc:
            self.error = str(exc)
            yield AskEvent(kind="error", text=f"generation stopped: {exc}")
        finally:
            stream.close()  # closes the connection: the server stops generating
        yield from self.add_line(buffer)
        self.timings["generate_s"] = round(time.perf_counter() - start, 3)

    def pick(self) -> Iterator[AskEvent]:
        """The model names the quotes that answer, best first; each is shown verbatim as soon as its number is
        written (the first token a user sees). Where it hesitated over its first pick, a quote it gave at least
        PICK_ALSO of its weight is shown after its picks. A reply without a usable number leaves no line:
        decide() then quotes the best-scored ones."""
        o, s = self.o, self.settings
        start = time.perf_counter()
        extra = {"structured_outputs": {"regex": picks_regex(len(self.quotes))}} if s.answer_lines_regex else None
        messages = pick_messages(self.question, self.quotes, s)
        ask = getattr(o.llm, "stream_choices", None)
        if callable(ask):
            pieces = ask(messages, max_tokens=PICK_MAX_TOKENS, temperature=s.llm_temperature, extra_body=extra)
        else:  # a backend without log-probabilities: its picks alone
            pieces = without_candidates(o.llm.stream(messages, max_tokens=PICK_MAX_TOKENS,
                                                     temperature=s.llm_temperature, extra_body=extra))
        picked: list[int] = []
        steps: list[dict[str, float]] = []
        try:
            for piece, candidates in pieces:
                self.raw += piece
                steps.extend(candidates)
                for n in self.new_picks(picked):
                    picked.append(n)
                    self.timings.setdefault("first_token_s", round(time.perf_counter() - start, 3))
                    yield from self.quote_line(self.quotes[n - 1])
        except LLMError as exc:
            self.error = str(exc)
            yield AskEvent(kind="error", text=f"generation stopped: {exc}")
        finally:
            pieces.close()  # closes the connection: the server stops generating
        for n in hesitations(steps, len(self.quotes)):
            if n not in picked and len(picked) < MAX_PICKS:
                picked.append(n)
                yield from self.quote_line(self.quotes[n - 1])
        self.timings["generate_s"] = round(time.perf_counter() - start, 3)
        self.timings.setdefault("first_token_s", self.timings["generate_s"])

    def new_picks(self, picked: list[int]) -> list[int]:
        """Quote numbers the reply has written since the last look. One still open counts once no shown quote's
        number starts with it: of 6 quotes, "[4" is 4, a token before its "]"; "[1" of 12 may yet be "[12]"."""
        written = markers_in(self.raw)
        trailing = OPEN_PICK.search(self.raw)
        if trailing and int(trailing.group(1)) * 10 > len(self.quotes):
            written.append(int(trailing.group(1)))
        fresh = [n for n in dict.fromkeys(written) if 1 <= n <= len(self.quotes) and n not in picked]
        return fresh[:max(0, MAX_PICKS - len(picked))]

    def quote_line(self, quote: Quote) -> Iterator[AskEvent]:
        """A picked quote as an answer line: its sentences verbatim, so each holds what it cites by construction."""
        # The paper's own reference numbers ("... larger values of dk [3].") would read as citations of quotes.
        sentences = [strip_markers(x) for x in quotable_sentences(quote.text, limit=PICKED_WORDS)]
        if not sentences:
            return
        checks: list[Future | Support] = [Support(True, 1.0, "the quote itself") for _ in sentences]
        self.lines.append(Line([quote.n], sentences, checks, verbatim=True))
        yield AskEvent(kind="token", text=_quoted(quote.n, sentences) + " ")

    def add_line(self, text: str) -> Iterator[AskEvent]:
        cited = [n for n in dict.fromkeys(markers_in(text)) if 1 <= n <= len(self.quotes)]
        bare = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", strip_markers(text))
        bare = QUOTE_HEADER.sub("", bare).strip().strip('"\u201c\u201d').strip()  # the model copying "p. 7: \"..."
        bare = without_heading(bare, self.headings)
        sentences = [x for x in split_sentences(bare) if len(content_words(x)) >= 2 and len(x.split()) >= 4]
        if not sentences:
            return
        cited = self.attribute(bare, cited)
        line = Line(cited, sentences)
        for sentence in sentences:
            if ABOUT_THE_QUOTES.search(sentence) or not cited:
                line.checks.append(Support(False, 0.0, "says nothing from a quote" if cited else "cites no quote"))
                continue
            quote = self.quotes[cited[0] - 1]
            line.checks.append(self.o.checker.submit(sentence, " ".join(self.quotes[n - 1].text for n in cited),
                                                     quote.title))
        self.lines.append(line)
        yield AskEvent(kind="verify", text=f"checking: {sentences[0][:80]}")

    @property
    def headings(self) -> list[str]:
        """The source lines shown above the quotes, whole and in parts: a line must not start with one."""
        shown = [shown_source(q) for q in self.quotes]
        return [h for title, section in shown for h in (title, section, f"{title}, {section}")]

    def attribute(self, text: str, cited: list[int]) -> list[int]:
        """The quotes a line is checked against. A line without a marker goes to the quote that clearly holds
        its words; so does a line copied from one quote under another's number (the small model miscounts
        the list: "[3] In BIGBIRD-ETC model, ..." copied from quote 4). The marker then names the quote the
        words came from, never one that does not hold them."""
        best = max(self.quotes, key=lambda q: overlap(text, q.text))
        best_share = overlap(text, best.text)
        if not cited:
            return [best.n] if best_share >= ALIGN_MIN else []
        held = overlap(text, " ".join(self.quotes[n - 1].text for n in cited))
        if best_share >= COPIED_MIN and held < ALIGN_MIN:
            return [best.n]
        return cited

    def gate_p_yes(self, wait: bool) -> float | None:
        if self.gate is None or (not wait and not self.gate.done()):
            return None
        try:
            return float(self.gate.result())
        except LLMError:
            return None

    def answerability(self, wait: bool = True) -> float | None:
        model = self.o.gate_model
        if model is None or self.signals is None:
            return None
        p_yes = self.gate_p_yes(wait)
        if model.with_p_yes and p_yes is None and not wait:
            return None
        self.signals = replace(self.signals, p_yes=p_yes)
        return model.probability(self.signals)

    def gate_says_no(self) -> bool:
        p = self.answerability(wait=False) if self.gate is not None and self.gate.done() else None
        return p is not None and p < self.settings.answerability_threshold

    # --- the decision
    def decide(self) -> Answer:
        start = time.perf_counter()
        p = self.answerability(wait=True)
        verdicts, kept = self.verdicts()
        self.timings["verify_s"] = round(time.perf_counter() - start, 3)
        declined = self.declined(p, verdicts)
        if declined is not None:
            return declined
        if not kept and (not self.error or self.settings.answer_style == "quotes"):
            return self.extractive(p, verdicts)  # the gate says answerable: the papers' own words beat no answer
        if self.lines and all(line.verbatim for line in self.lines):
            text = " ".join(_quoted(cited[0], [sentence]) for sentence, cited, _ in kept)
        else:
            text = " ".join(_with_markers(sentence, cited, weak) for sentence, cited, weak in kept)
        cited = sorted({n for _, ns, _ in kept for n in ns})
        return self.answer(text, p, verdicts, cited, partial=bool(self.error))

    def declined(self, p: float | None, verdicts: Sequence[Verdict] = ()) -> Answer | None:
        """The abstention when P(answerable) is under the threshold, else None."""
        if p is None or p >= self.settings.answerability_threshold:
            return None
        return self.abstain(f"P(answerable) {p:.2f} < {self.settings.answerability_threshold}", p, verdicts)

    def verdicts(self) -> tuple[list[Verdict], list[tuple[str, list[int], bool]]]:
        verdicts, kept, seen = [], [], []
        for line in self.lines:
            for sentence, check in zip(line.sentences, line.checks):
                result = check.result() if isinstance(check, Future) else check
                verdicts.append(Verdict(sentence=sentence, citations=tuple(line.cited), supported=result.supported,
                                        support=result.score, note=result.note))
                words = content_words(sentence)
                if result.supported is False and self.settings.unsupported == "remove":
                    continue
                if result.supported is None or any(restates(words, w) for w in seen):
                    continue  # unchecked, or the model repeating itself
                seen.append(words)
                kept.append((sentence, line.cited, not result.supported))
        return verdicts, kept

    def extractive(self, p: float | None, verdicts: list[Verdict]) -> Answer:
        """No generated sentence survived but the evidence stands: the best quotes, verbatim."""
        extracts = [(q, quotable_sentences(q.text)) for q in sorted(self.quotes, key=lambda q: -q.score)]
        best = [(q, sentences) for q, sentences in extracts if sentences][:EXTRACTIVE_QUOTES]
        if not best:
            return self.abstain("no generated sentence is supported and no quote reads as an answer", p, verdicts)
        text = " ".join(_quoted(q.n, sentences) for q, sentences in sorted(best, key=lambda b: b[0].n))
        return self.answer(text, p, verdicts, [q.n for q, _ in best], extractive=True, partial=bool(self.error))

    # --- building the Answer with its provenance
    def provenance(self, **extra) -> dict:
        s = self.settings
        return {"engine": "single-shot", "mode": s.retrieval_mode, "top_k": s.top_k,
                "quotes_budget_tokens": s.quotes_budget_tokens, "min_relevance": s.min_relevance,
                "answerability_threshold": s.answerability_threshold, "support_threshold": s.support_threshold,
                "signals": self.signals.as_dict() if self.signals else {}, "draft": self.raw, **extra}

    def answer(self, text: str, p: float | None, verdicts: list[Verdict], cited: Sequence[int],
               extractive: bool = False, partial: bool = False) -> Answer:
        hits = list(self.evidence.hits)
        citations = tuple(_citation(self.quotes[n - 1], hits) for n in cited)
        return Answer(question=self.question, text=text, citations=citations, passages=tuple(hits),
                      quotes=tuple(self.quotes), extractive=extractive, answerability=_round(p), error=self.error,
                      model=self.o.llm.model, prompt=self.prompt, queries=self.queries,
                      verdicts=tuple(verdicts), settings=self.provenance(), timings=self.timings, partial=partial)

    @property
    def prompt(self) -> str:
        return "+".join(PICK_PROMPTS if self.settings.answer_style == "quotes" else PROMPTS)

    def abstain(self, reason: str, p: float | None = None, verdicts: Sequence[Verdict] = ()) -> Answer:
        strong = self.evidence.relevance >= 0.6 or (self.signals is not None and self.signals.term_coverage >= 0.8)
        note = {"gate_disagrees_with_retrieval": True} if strong and p is not None else {}
        return Answer(question=self.question, text=ABSTAIN_TEXT, abstained=True, abstain_reason=reason,
                      passages=tuple(self.evidence.hits), quotes=tuple(self.quotes), answerability=_round(p),
                      model=self.o.llm.model, prompt=self.prompt, queries=self.queries,
                      verdicts=tuple(verdicts), settings=self.provenance(abstain_reason=reason, **note),
                      timings=self.timings)

    def final(self, answer: Answer) -> AskEvent:
        return AskEvent(kind="answer", answer=answer)


def lines_regex(n_quotes: int, max_lines: int = 3) -> str:
    """Up to `max_lines` lines, each "[n] Text" with n a quote shown: the model cannot write a line that cites
    nothing, nor cite a quote it was not given. (A bounded repeat of a bounded run made vLLM's regex compiler
    time out; unbounded runs compile at once.)"""
    marker = r"\[(?:" + "|".join(str(n) for n in range(1, n_quotes + 1)) + r")\]"
    line = marker + r" [A-Z][^\n\[\]]*"
    return f"{line}(?:\\n{line}){{0,{max_lines - 1}}}"


def picks_regex(n_quotes: int) -> str:
    """One to MAX_PICKS quote numbers, "[4][1]": the model can name only quotes it was shown."""
    marker = r"\[(?:" + "|".join(str(n) for n in range(1, n_quotes + 1)) + r")\]"
    return f"{marker}(?:{marker}){{0,{MAX_PICKS - 1}}}"


def hesitations(steps: Sequence[dict[str, float]], n_quotes: int) -> list[int]:
    """Quote numbers the model gave at least PICK_ALSO of its weight at its first pick, likeliest first. Qwen
    writes numbers digit by digit, so "1" there may begin "10"; quote 1 is then the reading (the best-scored)."""
    first = next((step for step in steps if step and max(step, key=step.__getitem__).strip().isdigit()), {})
    weights = {int(t.strip()): p for t, p in first.items() if t.strip().isdigit() and 1 <= int(t.strip()) <= n_quotes}
    return [n for n, p in sorted(weights.items(), key=lambda x: -x[1]) if p >= PICK_ALSO]


def _quoted(n: int, sentences: Sequence[str]) -> str:
    """Sentences of quote n in quotation marks, each cited on its own (every sentence carries its citation)."""
    return " ".join(f"\u201c{sentence}\u201d [{n}]" for sentence in sentences)


def _with_markers(sentence: str, cited: Sequence[int], unsupported: bool = False) -> str:
    return place_markers(sentence, "".join(f"[{n}]" for n in cited) + (" [unsupported]" if unsupported else ""))


def _citation(q: Quote, hits: Sequence[Hit]) -> Citation:
    paper = hits[q.passage - 1].paper if 0 < q.passage <= len(hits) else None
    return Citation(n=q.n, chunk_id=q.chunk_id, arxiv_id=q.arxiv_id, title=q.title, section=q.section,
                    page_start=q.page_start, page_end=q.page_end, quote=q.text,
                    authors=paper.authors if paper else (), year=paper.year if paper else None)


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


def _round(p: float | None) -> float | None:
    return None if p is None else round(p, 4)
