"""The LLM backend: chat completions from any OpenAI-compatible server (vLLM here) through the `openai` SDK.

Every failure (no server, timeout, HTTP error, a reply or stream event that is not what the API
promises) becomes an `LLMError` whose message says what happened: callers never see a traceback
from a malformed reply. The SDK's own retries are off: callers decide what to retry.
"""
from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from contextlib import closing, nullcontext
from typing import Any, ContextManager, Protocol

import httpx
import openai

from foundation.config import Settings
from assistant.llm.deadline import DeadlinePassed, GuardedAsyncTransport, GuardedTransport, ReplyLimits, limit_hit
from assistant.llm.protocol import LLMError, Message

__all__ = ["Completion", "OpenAICompatibleLLM", "LLMError"]


@dataclass(frozen=True)
class Completion:
    """One non-streamed reply with the server's accounting."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class RequestHooks(Protocol):
    """Around every request: the managed server's keep-alive (assistant/llm/server.py)."""

    def request(self) -> ContextManager[None]: ...


class _NoHooks:
    def request(self) -> ContextManager[None]:
        return nullcontext()


class OpenAICompatibleLLM:
    """Chat completions over HTTP. The sync client is shared (thread-safe); an async client is made per
    call, since the engine runs each question on an event loop of its own. Every request ends by its
    deadline (deadline_s, default timeout_s; inside `begin_answer` one deadline shared by the answer's
    requests) and stops reading a reply longer than its max_tokens allow (assistant/llm/deadline.py)."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "EMPTY", timeout_s: float = 300.0,
                 deadline_s: float | None = None, hooks: RequestHooks | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.limits = ReplyLimits(deadline_s if deadline_s is not None else timeout_s)
        self.hooks = hooks or _NoHooks()
        self._client = openai.OpenAI(**self._client_args(), http_client=openai.DefaultHttpxClient(
            transport=GuardedTransport(self.limits)))

    def begin_answer(self) -> None:
        """Requests from now to `end_answer` share one deadline: llm_deadline_s from the first of them."""
        self.limits.begin_answer()

    def end_answer(self) -> None:
        self.limits.end_answer()

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None,
                      hooks: RequestHooks | None = None) -> OpenAICompatibleLLM:
        url = base_url or settings.llm_base_url
        if not url:
            raise LLMError("no llm_base_url: use make_llm(settings) to start the managed server")
        return cls(url, settings.llm_model, api_key=settings.llm_api_key, timeout_s=settings.llm_timeout_s,
                   deadline_s=settings.llm_deadline_s, hooks=hooks)

    def _client_args(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_key": self.api_key, "max_retries": 0,
                "timeout": openai.Timeout(self.timeout_s, connect=10.0)}

    # --- sync
    def chat(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
             json_schema: dict[str, Any] | None = None, stop: list[str] | None = None,
             extra_body: dict[str, Any] | None = None) -> Completion:
        args = self._args(messages, max_tokens, temperature, json_schema, stop, extra_body)
        with self.hooks.request():
            try:
                reply = self._client.chat.completions.create(**args)
            except openai.OpenAIError as exc:
                raise self._error(exc) from exc
        return self._completion(reply)

    def complete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict[str, Any] | None = None, stop: list[str] | None = None,
                 extra_body: dict[str, Any] | None = None) -> str:
        return self.chat(messages, max_tokens=max_tokens, temperature=temperature, json_schema=json_schema,
                         stop=stop, extra_body=extra_body).text

    def stream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               stop: list[str] | None = None, extra_body: dict[str, Any] | None = None) -> Iterator[str]:
        """Reply text in pieces; closing the generator closes the connection, so the server stops generating."""
        args = self._args(messages, max_tokens, temperature, None, stop, extra_body)
        with closing(self._pieces(args)) as pieces:
            yield from (piece for piece, _ in pieces if piece)

    def yes_probability(self, messages: list[Message]) -> float:
        """P(Yes) / (P(Yes) + P(No)) for the reply's first token, from the server's top log-probabilities.

        A graded verdict in one generated token: small models put real signal in these probabilities
        even when their sampled answer is always the same word (eval/README.md, judge-check).
        """
        args = self._args(messages, 1, 0.0, None, None, None)
        with self.hooks.request():
            try:
                reply = self._client.chat.completions.create(**args, logprobs=True, top_logprobs=20)
            except openai.OpenAIError as exc:
                raise self._error(exc) from exc
        try:
            top = reply.choices[0].logprobs.content[0].top_logprobs
            mass = {"yes": 0.0, "no": 0.0}
            for entry in top:
                word = entry.token.strip().lower()
                if word in mass:
                    mass[word] += math.exp(float(entry.logprob))
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise LLMError(f"no log-probabilities in the reply from {self.base_url}") from exc
        if mass["yes"] + mass["no"] == 0.0:
            raise LLMError(f"neither Yes nor No among the top tokens: {[e.token for e in top][:8]}")
        return mass["yes"] / (mass["yes"] + mass["no"])

    def stream_choices(self, messages: list[Message], *, max_tokens: int = 16, temperature: float = 0.0,
                       extra_body: dict[str, Any] | None = None) -> Iterator[tuple[str, list[dict[str, float]]]]:
        """The reply in pieces as they are generated, each with, per token it holds, the probabilities of the
        server's top 20 candidates there: how sure the model was of each choice it wrote (answer_style
        "quotes" shows a pick as soon as it is written and reads the model's hesitation at the first).
        A server without log-probabilities gives the pieces with no candidates."""
        args = self._args(messages, max_tokens, temperature, None, None, extra_body)
        yield from self._pieces(args, logprobs=True, top_logprobs=20)

    # --- async twins (vLLM batches concurrent requests: 2 at once is ~2x the throughput)
    async def achat(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                    json_schema: dict[str, Any] | None = None, stop: list[str] | None = None,
                    extra_body: dict[str, Any] | None = None) -> Completion:
        args = self._args(messages, max_tokens, temperature, json_schema, stop, extra_body)
        with self.hooks.request():  # blocks only to start the server again after keep-alive stopped it
            try:
                async with self._async_client() as client:
                    reply = await client.chat.completions.create(**args)
            except openai.OpenAIError as exc:
                raise self._error(exc) from exc
        return self._completion(reply)

    async def acomplete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                        json_schema: dict[str, Any] | None = None, stop: list[str] | None = None,
                        extra_body: dict[str, Any] | None = None) -> str:
        completion = await self.achat(messages, max_tokens=max_tokens, temperature=temperature,
                                      json_schema=json_schema, stop=stop, extra_body=extra_body)
        return completion.text

    async def astream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                      stop: list[str] | None = None, extra_body: dict[str, Any] | None = None) -> AsyncIterator[str]:
        args = self._args(messages, max_tokens, temperature, None, stop, extra_body)
        reading = _StreamReader(self.base_url)
        with self.hooks.request():
            try:
                async with self._async_client() as client:
                    async with await client.chat.completions.create(**args, stream=True) as events:
                        async for event in events:
                            if piece := reading.piece(event):
                                yield piece
            except STREAM_ERRORS as exc:
                raise self._error(exc, streaming=True) from exc
        reading.check_finished()

    # --- internals
    def _async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**self._client_args(), http_client=openai.DefaultAsyncHttpxClient(
            transport=GuardedAsyncTransport(self.limits)))

    def _pieces(self, args: dict[str, Any], **logprobs: Any) -> Iterator[tuple[str, list[dict[str, float]]]]:
        """One streamed reply: each event's text and its tokens' top candidates (none unless asked for)."""
        reading = _StreamReader(self.base_url)
        with self.hooks.request():
            try:
                with self._client.chat.completions.create(**args, stream=True, **logprobs) as events:
                    for event in events:
                        piece, candidates = reading.piece(event), reading.candidates(event)
                        if piece or candidates:
                            yield piece, candidates
            except STREAM_ERRORS as exc:
                raise self._error(exc, streaming=True) from exc
        reading.check_finished()

    def _args(self, messages: list[Message], max_tokens: int, temperature: float, json_schema: dict[str, Any] | None,
              stop: list[str] | None, extra_body: dict[str, Any] | None) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "extra_headers": self.limits.stamp()}
        if stop:
            args["stop"] = stop
        if json_schema is not None:
            args["response_format"] = {"type": "json_schema", "json_schema": {
                "name": _schema_name(json_schema), "schema": json_schema, "strict": True}}
        if extra_body:
            args["extra_body"] = extra_body
        return args

    def _completion(self, reply: Any) -> Completion:
        try:
            choice = reply.choices[0]
            text = choice.message.content or ""
            usage = reply.usage
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise LLMError(f"unreadable reply from {self.base_url}: {str(reply)[:300]!r}") from exc
        if not text.strip():
            raise LLMError(f"empty reply from {self.model} (finish_reason={choice.finish_reason})")
        return Completion(text=text, finish_reason=choice.finish_reason, prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens)

    def _error(self, exc: Exception, streaming: bool = False) -> LLMError:
        limit = limit_hit(exc)
        if isinstance(limit, DeadlinePassed):
            return LLMError(f"the model at {self.base_url} did not finish within llm_deadline_s "
                            f"({self.limits.deadline_s:g} s): stopped waiting")
        if limit is not None:
            return LLMError(f"the server at {self.base_url} sent a reply longer than the tokens asked for "
                            f"({limit}): stopped reading")
        if isinstance(exc, ValueError):
            return LLMError(f"malformed stream event from {self.base_url}: {exc}")
        if isinstance(exc, httpx.HTTPError) and not isinstance(exc, httpx.TimeoutException):
            return LLMError(f"the stream broke talking to {self.base_url}: {type(exc).__name__}: {exc}")
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            return LLMError(f"the LLM server at {self.base_url} did not answer within {self.timeout_s:.0f} s "
                            "(llm_timeout_s)")
        if isinstance(exc, openai.APIConnectionError):
            if streaming and "connect" not in str(exc.__cause__ or "").lower():
                return LLMError(f"the stream broke talking to {self.base_url}: {exc.__cause__ or exc}")
            return LLMError(f"no LLM server at {self.base_url}: start one or unset llm_base_url")
        if isinstance(exc, openai.APIStatusError):
            body = exc.body
            detail = body.get("message", body) if isinstance(body, dict) else (exc.response.text[:300] or exc.message)
            return LLMError(f"LLM server at {self.base_url} returned HTTP {exc.status_code}: {detail}")
        if isinstance(exc, openai.APIError) and "error" in str(exc).lower():
            return LLMError(f"the LLM server at {self.base_url} reported an error: {exc.message}")
        return LLMError(f"unusable reply from the LLM server at {self.base_url}: {type(exc).__name__}: {exc}")


# The SDK lets some transport and decoding errors through raw while a stream is read.
STREAM_ERRORS = (openai.OpenAIError, httpx.HTTPError, ValueError)


class _StreamReader:
    """Text pieces of one streamed reply; knows whether the reply finished."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.finished = False

    def piece(self, event: Any) -> str:
        """The text of one stream event; a malformed event is an LLMError, never a crash."""
        try:
            choices = event.choices or []
            if not choices:
                return ""
            choice = choices[0]
            text = choice.delta.content if choice.delta is not None else None
            if text is not None and not isinstance(text, str):
                raise TypeError(f"delta content is {type(text).__name__}")
            self.finished = self.finished or choice.finish_reason is not None
            return text or ""
        except (AttributeError, IndexError, TypeError, KeyError) as exc:
            raise LLMError(f"malformed stream event from {self.base_url}: {str(event)[:200]!r} ({exc})") from None

    @staticmethod
    def candidates(event: Any) -> list[dict[str, float]]:
        """Per token of one stream event, its top candidates' probabilities; none where the server sent none."""
        try:
            content = event.choices[0].logprobs.content or []
            return [{e.token: math.exp(float(e.logprob)) for e in step.top_logprobs or []} for step in content]
        except (AttributeError, IndexError, TypeError, ValueError):
            return []

    def check_finished(self) -> None:
        if not self.finished:
            raise LLMError(f"the stream from {self.base_url} ended before the reply was complete")


def _schema_name(schema: dict[str, Any]) -> str:
    import re

    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title", "reply")))[:64]
    return name or "reply"
