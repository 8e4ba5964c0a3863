"""Markdown export of one answer or a whole thread, with references and BibTeX. No textual here."""
from __future__ import annotations

import re
from pathlib import Path

from foundation.types import bibtex_entry
from assistant.tui.history import Conversation, Turn

PARTIAL_NOTE = "*(partial answer: stopped before the end)*"


def slug(text: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:limit].rstrip("-") or "answer")


def turn_to_markdown(turn: Turn) -> str:
    if turn.answer is not None:
        md = turn.answer.model_copy(update={"question": turn.question}).to_markdown()
        return md if not (turn.answer.partial or turn.state == "cancelled") else md.rstrip() + f"\n\n{PARTIAL_NOTE}\n"
    lines = [f"**Q:** {turn.question}", "", turn.text or "*(no answer)*"]
    if turn.state == "cancelled":
        lines += ["", PARTIAL_NOTE]
    elif turn.state == "failed":
        lines += ["", f"*(failed: {turn.error})*"]
    return "\n".join(lines) + "\n"


def thread_to_markdown(conversation: Conversation) -> str:
    """Every turn with its references; one BibTeX block for all cited papers at the end."""
    parts = [f"# {conversation.title or 'Conversation'}", ""]
    bib: dict[str, str] = {}
    for i, turn in enumerate(conversation.turns, start=1):
        parts.append(f"## {i}. {turn.question}")
        parts.append("")
        parts.append(turn.text or "*(no answer)*")
        if turn.state == "cancelled" or (turn.answer is not None and turn.answer.partial):
            parts += ["", PARTIAL_NOTE]
        if turn.answer is not None and turn.answer.citations:
            parts += ["", "**References**"]
            for c in turn.answer.citations:
                parts.append(f"- {c.label}" + (f"\n  > {c.quote}" if c.quote else ""))
                bib.setdefault(c.arxiv_id, bibtex_entry(c))
        parts.append("")
    if bib:
        parts += ["## BibTeX", "```bibtex", *bib.values(), "```"]
    return "\n".join(parts).rstrip() + "\n"


def write_export(conversation: Conversation, path: Path, whole_thread: bool) -> Path:
    if not conversation.turns:
        raise ValueError("nothing to export yet: ask a question first")
    text = thread_to_markdown(conversation) if whole_thread else turn_to_markdown(conversation.turns[-1])
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
