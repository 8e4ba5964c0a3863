"""Passages as the model sees them: one sanitiser and one formatter for every prompt that shows paper text.

Passages are untrusted data: text in them that reads like an instruction to the model is cut out
before any prompt sees it, in the single-shot, agentic, HyDE, verification and summary prompts alike.
"""
from __future__ import annotations

import re
from typing import Sequence

from foundation.config import Settings
from foundation.prompts import load_prompt
from foundation.types import Hit, Quote, page_span
from assistant.engine.planted import is_planted, sentences as planted_sentences
from assistant.engine.planted_markup import unwrap
from assistant.llm.protocol import Message

TEMPLATE_TOKEN = re.compile(r"<\|im_start\|>\s*(system|user|assistant)?|<\|[a-z_]{2,20}\|>|\[/?INST\]", re.IGNORECASE)
REMOVED = "[text addressed to the reader model removed]"


def sanitize_passage(text: str) -> tuple[str, bool]:
    """Cut sentences that are instructions to a model (assistant/engine/planted.py), and markup that wraps one
    (assistant/engine/planted_markup.py); (clean text, whether anything was cut)."""
    pieces = unwrap(text)
    if len(pieces) == 1 and not pieces[0][1]:
        return _sanitize_prose(text)
    kept: list[str] = []
    for piece, planted in pieces:
        clean = REMOVED if planted else _sanitize_prose(piece)[0].strip()
        if clean and not (clean == REMOVED and kept and kept[-1].endswith(REMOVED)):
            kept.append(clean)
    return " ".join(" ".join(kept).split()), True


def _sanitize_prose(text: str) -> tuple[str, bool]:
    # Chat-template tokens are never paper text; a turn they open becomes a role line ("system: ..."), cut below.
    text, tokens = TEMPLATE_TOKEN.subn(lambda m: f"\n{m.group(1)}: " if m.group(1) else "\n", text)
    parts = [(sentence, is_planted(sentence)) for sentence in planted_sentences(text)]
    if not any(planted for _, planted in parts):
        return (" ".join(text.split()), True) if tokens else (text, False)
    kept: list[str] = []
    for sentence, planted in parts:
        if planted:
            if not kept or kept[-1] != REMOVED:
                kept.append(REMOVED)
        else:
            kept.append(sentence.strip())
    return " ".join(kept), True


def passage_text(hit: Hit) -> str:
    """A hit's text as prompts show it (sanitised)."""
    return sanitize_passage(hit.chunk.text.strip())[0]


def format_passages(hits: Sequence[Hit], settings: Settings) -> str:
    """Numbered passages as every engine prompt shows them (same text => the server's prefix cache hits)."""
    template = load_prompt("passage", settings.prompts_dir)
    return "\n\n".join(
        template.render(n=i, title=h.paper_title or h.chunk.arxiv_id, arxiv_id=h.chunk.arxiv_id,
                        section=h.chunk.section or "-", pages=h.chunk.pages_label, text=passage_text(h))
        for i, h in enumerate(hits, start=1))


def answer_messages(question: str, hits: Sequence[Hit], settings: Settings) -> list[Message]:
    """The answer prompt over sanitised passages; its prefix matches the gate's and the judge's."""
    system = load_prompt("answer_system", settings.prompts_dir).render()
    user = load_prompt("answer_user", settings.prompts_dir).render(passages=format_passages(hits, settings),
                                                                  question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def shown_source(q: Quote) -> tuple[str, str]:
    """The title and section a quote's source line shows (the answer cuts either from a line copying it)."""
    return q.title or q.arxiv_id, q.section or "-"


def format_quotes(quotes: Sequence[Quote], settings: Settings) -> str:
    """Each quote on a line of its own, "[n] text", as the answer's lines are written: the model copying a
    quote's start then copies its words, not its title and page (a fifth of the lines did, ~25 tokens each
    of a 160-token answer). Where a quote comes from goes above it: the paper's title once for a run of
    quotes from that paper, its section and page once for a run from the same place (on dev a third of the
    source lines' tokens, ~56 of a ~600-token prompt: prefill is the wait before the first token)."""
    paper_line = load_prompt("quote_paper", settings.prompts_dir)
    source = load_prompt("quote_source", settings.prompts_dir)
    quote = load_prompt("quote", settings.prompts_dir)
    lines: list[str] = []
    paper = where = ""
    for q in quotes:
        title, section = shown_source(q)
        if title != paper:
            lines.append(paper_line.render(title=title).rstrip())
            paper, where = title, ""
        place = source.render(section=section, pages=page_span(q.page_start, q.page_end)).rstrip()
        if place != where:
            lines.append(place)
            where = place
        lines.append(quote.render(n=q.n, text=q.text).rstrip())
    return "\n".join(lines)


def quote_messages(question: str, quotes: Sequence[Quote], settings: Settings) -> list[Message]:
    """The answer prompt: a fixed system prompt first (cached by the server across questions), then the quotes
    and the question; the gate's prompt starts the same way, so the answer reuses its prefill."""
    system = load_prompt("quotes_system", settings.prompts_dir).render()
    user = load_prompt("quotes_user", settings.prompts_dir).render(quotes=format_quotes(quotes, settings),
                                                                  question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def pick_messages(question: str, quotes: Sequence[Quote], settings: Settings) -> list[Message]:
    """The answer prompt's quotes and question under a system prompt that asks for the numbers of the quotes
    that answer (answer_style "quotes")."""
    system = load_prompt("picks_system", settings.prompts_dir).render()
    return [{"role": "system", "content": system}, quote_messages(question, quotes, settings)[1]]


def gate_messages(question: str, quotes: Sequence[Quote], settings: Settings) -> list[Message]:
    system = load_prompt("quotes_system", settings.prompts_dir).render()
    user = load_prompt("quotes_gate", settings.prompts_dir).render(quotes=format_quotes(quotes, settings),
                                                                  question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]

