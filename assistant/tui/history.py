"""Conversations on disk (settings.home/history/<id>.json) and follow-up context. No textual here."""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from foundation.types import Answer, Hit

MARKERS = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")
CONTEXT_ANSWER_CHARS = 300


class Turn(BaseModel):
    question: str = Field(description="The question as the student typed it")
    text: str = Field(default="", description="The answer text shown: final, or what streamed before a stop")
    answer: Answer | None = Field(default=None, description="The engine's final answer, when it finished")
    hits: tuple[Hit, ...] = Field(default=(), description="Passages seen before a stop (the final answer carries its own)")
    state: Literal["running", "done", "cancelled", "failed"] = "running"
    error: str = ""
    asked_at: float = Field(default_factory=time.time)

    @property
    def passages(self) -> tuple[Hit, ...]:
        return self.answer.passages if self.answer else self.hits


class Conversation(BaseModel):
    id: str = Field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
    title: str = ""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    scope: tuple[str, ...] = Field(default=(), description="arXiv ids the questions were scoped to; empty = all")
    turns: list[Turn] = Field(default_factory=list)

    def with_context(self, question: str) -> str:
        """The question to send: a follow-up carries the previous exchange, question first (so that a
        retriever truncating long queries still sees it)."""
        prior = [t for t in self.turns if t.text and t.state in ("done", "cancelled")]
        if not prior:
            return question
        last = prior[-1]
        answer = " ".join(MARKERS.sub("", last.text).split())
        if len(answer) > CONTEXT_ANSWER_CHARS:
            answer = answer[:CONTEXT_ANSWER_CHARS].rsplit(" ", 1)[0] + " ..."
        return f"{question}\n\n(Follow-up. Previous question: {last.question}\nPrevious answer: {answer})"


class HistoryStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, conversation_id: str) -> Path:
        if not re.fullmatch(r"[\w.-]+", conversation_id):
            raise ValueError(f"bad conversation id {conversation_id!r}")
        return self.root / f"{conversation_id}.json"

    def save(self, conversation: Conversation) -> Path:
        if not conversation.turns:
            raise ValueError("nothing to save: the conversation has no questions")
        if not conversation.title:
            conversation.title = conversation.turns[0].question[:80]
        conversation.updated_at = time.time()
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(conversation.id)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(conversation.model_dump_json(indent=1))
        os.replace(tmp, path)
        return path

    def load(self, conversation_id: str) -> Conversation:
        conversation = Conversation.model_validate_json(self.path(conversation_id).read_text())
        for turn in conversation.turns:  # a turn saved mid-answer (app killed) is a stopped one
            if turn.state == "running":
                turn.state = "cancelled"
        return conversation

    def list(self) -> list[Conversation]:
        """Saved conversations, newest first; unreadable files are skipped."""
        out = []
        for path in self.root.glob("*.json") if self.root.exists() else []:
            try:
                out.append(Conversation.model_validate_json(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(out, key=lambda c: c.updated_at, reverse=True)

    def delete(self, conversation_id: str) -> None:
        self.path(conversation_id).unlink(missing_ok=True)
