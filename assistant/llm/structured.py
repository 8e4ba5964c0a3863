"""The one place that asks a model for structured output, parses it and retries.

Small local models loop, repeat themselves and emit broken JSON (FACTS.md), so every decision call is
constrained by a JSON schema on the server, parsed and validated in code here, retried once with a
nudge, and otherwise reported as failed (never raised) so the caller can fall back.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Generic, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from foundation.threads import aiter_in_thread, run_sync
from assistant.llm.protocol import LLM, LLMError, Message

T = TypeVar("T", bound=BaseModel)


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


@dataclass
class Budget:
    """Counts (roughly) the tokens that decision calls spend; callers stop starting work once it is spent."""

    limit: int
    used: int = 0
    calls: int = 0
    failures: list[str] = field(default_factory=list)

    def charge(self, messages: Sequence[Message], reply: str) -> None:
        self.calls += 1
        self.used += sum(approx_tokens(m["content"]) for m in messages) + approx_tokens(reply)

    @property
    def spent(self) -> bool:
        return self.used >= self.limit


async def acomplete(llm: LLM, messages: list[Message], **kwargs: Any) -> str:
    """The LLM's async twin when it has one, else the sync call in a thread (the event loop stays free)."""
    if hasattr(llm, "acomplete"):
        return await llm.acomplete(messages, **kwargs)
    return await asyncio.to_thread(llm.complete, messages, **kwargs)


async def astream(llm: LLM, messages: list[Message], **kwargs: Any) -> AsyncIterator[str]:
    """The LLM's async stream, or its sync stream pumped from a thread so the loop keeps serving events."""
    if hasattr(llm, "astream"):
        async for piece in llm.astream(messages, **kwargs):
            yield piece
        return
    async for piece in aiter_in_thread(lambda: llm.stream(messages, **kwargs)):
        yield piece


def parse_json_reply(text: str, model: type[T]) -> T | None:
    """The reply as `model`, tolerating code fences and text around one JSON object; None if unusable."""
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    candidates = [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    if start >= 0:  # cut off by max_tokens (small models ramble inside a string): close it and keep what is there
        candidates += [text[start:].rstrip().rstrip(",") + tail for tail in ('"}', '"]}', "]}", "}")]
    for candidate in candidates:
        try:
            return model.model_validate(json.loads(candidate))
        except (ValueError, ValidationError, TypeError):
            continue
    return None


@dataclass
class JsonResult(Generic[T]):
    value: T | None
    attempts: int
    error: str = ""
    seconds: float = 0.0


async def ask_json(llm: LLM, messages: list[Message], model: type[T], schema: dict[str, Any] | None = None, *,
                   max_tokens: int, budget: Budget | None = None, name: str = "", retries: int = 1) -> JsonResult[T]:
    """One structured decision: constrained by `schema` (default: the model's strict schema), validated as
    `model`, retried `retries` times, never raises.

    A retry adds a nudge and a little temperature, since a greedy repeat of the same prompt would
    reproduce the same broken reply.
    """
    schema = schema or schema_of(model, name or model.__name__)
    start = time.perf_counter()
    error = ""
    attempt = 0
    for attempt in range(1, retries + 2):
        msgs = messages if attempt == 1 else [*messages, {
            "role": "user", "content": "Your previous reply was not valid JSON for the schema. Reply with the JSON object only."}]
        try:
            reply = await acomplete(llm, msgs, max_tokens=max_tokens, temperature=0.0 if attempt == 1 else 0.3,
                                    json_schema=schema)
        except LLMError as exc:
            error = f"{name}: {exc}"
            if is_fatal(exc):
                break
            continue
        if budget is not None:
            budget.charge(msgs, reply)
        value = parse_json_reply(reply, model)
        if value is not None:
            return JsonResult(value, attempt, seconds=round(time.perf_counter() - start, 3))
        error = f"{name}: unusable JSON reply {reply[:120]!r}"
    if budget is not None:
        budget.failures.append(error)
    return JsonResult(None, attempt, error, round(time.perf_counter() - start, 3))


def ask_json_sync(llm: LLM, messages: list[Message], model: type[T], schema: dict[str, Any] | None = None,
                  **kwargs: Any) -> JsonResult[T]:
    """Sync twin of `ask_json` for callers without an event loop (the eval judge)."""
    return run_sync(ask_json(llm, messages, model, schema, **kwargs))


def is_fatal(exc: LLMError) -> bool:
    """A server that is not there will not be there a moment later either: do not wait on a retry."""
    text = str(exc)
    return text.startswith("no LLM server") or "did not answer within" in text


def schema_of(model: type[BaseModel], title: str) -> dict[str, Any]:
    """A strict JSON schema for vLLM's structured output: every property required, nothing extra."""
    schema = model.model_json_schema()
    schema["title"] = title
    schema["additionalProperties"] = False
    schema["required"] = list(schema.get("properties", {}))
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
        prop.pop("title", None)
    return schema
