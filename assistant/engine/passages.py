"""Passages as the model sees them: one sanitiser and one formatter for every prompt that shows paper text.

Passages are untrusted data: text in them that reads like an instruction to the model is cut out
before any prompt sees it, in the single-shot, agentic, HyDE, verification and summary prompts alike.
"""
from __future__ import annotations

import re
from typing import Sequence

from assistant.core.config import Settings
from assistant.core.prompts import load_prompt
from assistant.core.types import Hit
from assistant.llm.protocol import Message

# Sentences in a passage that address the model rather than the reader.
INSTRUCTION_LIKE = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(previous|prior|above|earlier|all|any|system|your)\b"
    r"[^.!?\n]{0,30}\b(instructions?|prompts?|rules?|directions?|context)\b"
    r"|\byou are now\b|\bnew instructions?\s*:|\bsystem prompt\b|\bas an ai (language )?model\b"
    r"|<\|im_(start|end)\|>|\b(assistant|system)\s*:\s",
    re.IGNORECASE,
)
SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|$)")
REMOVED = "[text addressed to the reader model removed]"


def sanitize_passage(text: str) -> tuple[str, bool]:
    """Cut sentences that read like instructions to a model; (clean text, whether anything was cut)."""
    if not INSTRUCTION_LIKE.search(text):
        return text, False
    kept: list[str] = []
    for sentence in SENTENCE.findall(text):
        if not sentence.strip():
            continue
        if INSTRUCTION_LIKE.search(sentence):
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
