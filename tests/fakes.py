"""A scripted fake LLM for unit tests of control flow (never the only test of a feature)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator

from assistant.llm.protocol import LLMError, Message


@dataclass
class ScriptedLLM:
    """Returns `replies` in order and records every call.

    A reply may be a str, a dict (sent back as JSON text) or an Exception (raised).
    """

    replies: list[str | dict[str, Any] | Exception]
    model: str = "scripted"
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def prompts(self) -> list[list[Message]]:
        return [call["messages"] for call in self.calls]

    def complete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict[str, Any] | None = None, stop: list[str] | None = None,
                 extra_body: dict[str, Any] | None = None) -> str:
        self.calls.append({"messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                           "json_schema": json_schema, "stop": stop, "extra_body": extra_body})
        if not self.replies:
            raise LLMError(f"ScriptedLLM ran out of replies after {len(self.calls) - 1} calls")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return json.dumps(reply) if isinstance(reply, dict) else reply

    def stream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               stop: list[str] | None = None, extra_body: dict[str, Any] | None = None) -> Iterator[str]:
        text = self.complete(messages, max_tokens=max_tokens, temperature=temperature, stop=stop, extra_body=extra_body)
        yield from re.findall(r"\S+\s*|\s+", text)

    async def acomplete(self, messages: list[Message], **kwargs: Any) -> str:
        return self.complete(messages, **kwargs)

    async def astream(self, messages: list[Message], **kwargs: Any) -> AsyncIterator[str]:
        for piece in self.stream(messages, **kwargs):
            yield piece
