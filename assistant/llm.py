"""LLM backends: an OpenAI-compatible HTTP client (vLLM, or any such server) and a scripted fake.

`make_llm(settings)` is the entry point: it uses `settings.llm_base_url` when set, else starts
(or reuses) the managed local vLLM server.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from assistant.config import Settings
from assistant.llm_protocol import LLMError, Message

__all__ = ["Completion", "OpenAICompatibleLLM", "ScriptedLLM", "make_llm", "LLMError"]


@dataclass(frozen=True)
class Completion:
    """One non-streamed reply with the server's accounting."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class OpenAICompatibleLLM:
    """Chat completions over HTTP (httpx). One short-lived connection per call: safe across threads/loops."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "EMPTY", timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = httpx.Timeout(timeout_s, connect=10.0)

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> OpenAICompatibleLLM:
        url = base_url or settings.llm_base_url
        if not url:
            raise LLMError("no llm_base_url: use make_llm(settings) to start the managed server")
        return cls(url, settings.llm_model, api_key=settings.llm_api_key, timeout_s=settings.llm_timeout_s)

    # --- sync
    def chat(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
             json_schema: dict[str, Any] | None = None, stop: list[str] | None = None) -> Completion:
        return self._parse(self._post(self._body(messages, max_tokens, temperature, json_schema, stop, stream=False)))

    def complete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict[str, Any] | None = None, stop: list[str] | None = None) -> str:
        return self.chat(messages, max_tokens=max_tokens, temperature=temperature,
                         json_schema=json_schema, stop=stop).text

    def stream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]:
        body = self._body(messages, max_tokens, temperature, None, stop, stream=True)
        done = False
        try:
            with httpx.Client(timeout=self.timeout, headers=self._headers()) as client:
                with client.stream("POST", self._url, json=body) as reply:
                    if reply.status_code >= 400:
                        reply.read()
                        raise self._http_error(reply)
                    for line in reply.iter_lines():
                        piece, done = _sse_piece(line)
                        if piece:
                            yield piece
                        if done:
                            break
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, streaming=True) from exc
        if not done:
            raise LLMError(f"the stream from {self.base_url} ended before the reply was complete")

    def complete_json(self, messages: list[Message], schema: dict[str, Any], *, retries: int = 1,
                      max_tokens: int = 512, temperature: float = 0.0) -> dict[str, Any]:
        """Reply constrained to `schema`, parsed; malformed JSON is retried `retries` times."""
        text = ""
        for _ in range(retries + 1):
            text = self.complete(messages, max_tokens=max_tokens, temperature=temperature, json_schema=schema)
            parsed = _parse_json_object(text)
            if parsed is not None:
                return parsed
        raise LLMError(f"the model returned malformed JSON {retries + 1} times; last reply: {text[:300]!r}")

    def yes_probability(self, messages: list[Message]) -> float:
        """P(Yes) / (P(Yes) + P(No)) for the reply's first token, from the server's top log-probabilities.

        A graded verdict in one generated token: small models put real signal in these probabilities
        even when their sampled answer is always the same word (eval/README.md, judge-check).
        """
        body = self._body(messages, 1, 0.0, None, None, stream=False)
        body.update(logprobs=True, top_logprobs=20)
        reply = self._post(body)
        if reply.status_code >= 400:
            raise self._http_error(reply)
        try:
            top = reply.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            mass = {"yes": 0.0, "no": 0.0}
            for entry in top:
                word = entry["token"].strip().lower()
                if word in mass:
                    mass[word] += math.exp(float(entry["logprob"]))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"no log-probabilities in the reply from {self.base_url}: {reply.text[:200]!r}") from exc
        if mass["yes"] + mass["no"] == 0.0:
            raise LLMError(f"neither Yes nor No among the top tokens: {[e.get('token') for e in top][:8]}")
        return mass["yes"] / (mass["yes"] + mass["no"])

    # --- async twins (vLLM batches concurrent requests: 2 at once is ~2x the throughput)
    async def achat(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                    json_schema: dict[str, Any] | None = None, stop: list[str] | None = None) -> Completion:
        body = self._body(messages, max_tokens, temperature, json_schema, stop, stream=False)
        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:
                reply = await client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return self._parse(reply)

    async def acomplete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                        json_schema: dict[str, Any] | None = None, stop: list[str] | None = None) -> str:
        completion = await self.achat(messages, max_tokens=max_tokens, temperature=temperature,
                                      json_schema=json_schema, stop=stop)
        return completion.text

    async def astream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                      stop: list[str] | None = None) -> AsyncIterator[str]:
        body = self._body(messages, max_tokens, temperature, None, stop, stream=True)
        done = False
        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:
                async with client.stream("POST", self._url, json=body) as reply:
                    if reply.status_code >= 400:
                        await reply.aread()
                        raise self._http_error(reply)
                    async for line in reply.aiter_lines():
                        piece, done = _sse_piece(line)
                        if piece:
                            yield piece
                        if done:
                            break
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, streaming=True) from exc
        if not done:
            raise LLMError(f"the stream from {self.base_url} ended before the reply was complete")

    async def acomplete_json(self, messages: list[Message], schema: dict[str, Any], *, retries: int = 1,
                             max_tokens: int = 512, temperature: float = 0.0) -> dict[str, Any]:
        text = ""
        for _ in range(retries + 1):
            text = await self.acomplete(messages, max_tokens=max_tokens, temperature=temperature,
                                        json_schema=schema)
            parsed = _parse_json_object(text)
            if parsed is not None:
                return parsed
        raise LLMError(f"the model returned malformed JSON {retries + 1} times; last reply: {text[:300]!r}")

    # --- internals
    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            with httpx.Client(timeout=self.timeout, headers=self._headers()) as client:
                return client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    @property
    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _body(self, messages: list[Message], max_tokens: int, temperature: float,
              json_schema: dict[str, Any] | None, stop: list[str] | None, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "stream": stream}
        if stop:
            body["stop"] = stop
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": _schema_name(json_schema), "schema": json_schema, "strict": True}}
        return body

    def _parse(self, reply: httpx.Response) -> Completion:
        if reply.status_code >= 400:
            raise self._http_error(reply)
        try:
            data = reply.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(f"unreadable reply from {self.base_url}: {reply.text[:300]!r}") from exc
        if not text.strip():
            raise LLMError(f"empty reply from {self.model} (finish_reason={choice.get('finish_reason')})")
        return Completion(text=text, finish_reason=choice.get("finish_reason"),
                          prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)))

    def _http_error(self, reply: httpx.Response) -> LLMError:
        detail = reply.text[:500]
        try:
            err = reply.json().get("error", {})
            detail = err.get("message", detail) if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            pass
        return LLMError(f"LLM server at {self.base_url} returned HTTP {reply.status_code}: {detail}")

    def _transport_error(self, exc: httpx.HTTPError, streaming: bool = False) -> LLMError:
        if isinstance(exc, httpx.ConnectError):
            return LLMError(f"no LLM server at {self.base_url}: start one or unset llm_base_url")
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(f"the LLM server at {self.base_url} did not answer within {self.timeout.read:.0f} s "
                            "(llm_timeout_s)")
        what = "the stream broke" if streaming else "the request failed"
        return LLMError(f"{what} talking to {self.base_url}: {type(exc).__name__}: {exc}")


def _sse_piece(line: str) -> tuple[str, bool]:
    """(text piece, finished) from one server-sent-events line of an OpenAI chat stream."""
    if not line.startswith("data:"):
        return "", False
    payload = line[5:].strip()
    if payload == "[DONE]":
        return "", True
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise LLMError(f"unreadable stream event: {payload[:200]!r}") from exc
    if "error" in event:
        err = event["error"]
        raise LLMError(f"the LLM server reported an error mid-stream: {err.get('message', err) if isinstance(err, dict) else err}")
    choices = event.get("choices") or []
    if not choices:
        return "", False
    return (choices[0].get("delta") or {}).get("content") or "", False


def _parse_json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _schema_name(schema: dict[str, Any]) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title", "reply")))[:64]
    return name or "reply"


@dataclass
class ScriptedLLM:
    """A fake for unit tests of control flow: returns `replies` in order and records every call.

    A reply may be a str, a dict (sent back as JSON text) or an Exception (raised).
    """

    replies: list[str | dict[str, Any] | Exception]
    model: str = "scripted"
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def prompts(self) -> list[list[Message]]:
        return [call["messages"] for call in self.calls]

    def complete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict[str, Any] | None = None, stop: list[str] | None = None) -> str:
        self.calls.append({"messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                           "json_schema": json_schema, "stop": stop})
        if not self.replies:
            raise LLMError(f"ScriptedLLM ran out of replies after {len(self.calls) - 1} calls")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return json.dumps(reply) if isinstance(reply, dict) else reply

    def stream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]:
        text = self.complete(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        yield from re.findall(r"\S+\s*|\s+", text)

    def complete_json(self, messages: list[Message], schema: dict[str, Any], *, retries: int = 1,
                      max_tokens: int = 512, temperature: float = 0.0) -> dict[str, Any]:
        text = ""
        for _ in range(retries + 1):
            text = self.complete(messages, max_tokens=max_tokens, temperature=temperature, json_schema=schema)
            parsed = _parse_json_object(text)
            if parsed is not None:
                return parsed
        raise LLMError(f"the model returned malformed JSON {retries + 1} times; last reply: {text[:300]!r}")

    async def acomplete(self, messages: list[Message], **kwargs: Any) -> str:
        return self.complete(messages, **kwargs)

    async def astream(self, messages: list[Message], **kwargs: Any) -> AsyncIterator[str]:
        for piece in self.stream(messages, **kwargs):
            yield piece

    async def acomplete_json(self, messages: list[Message], schema: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.complete_json(messages, schema, **kwargs)


def make_llm(settings: Settings, progress: Callable[[str], None] | None = None) -> OpenAICompatibleLLM:
    """The configured LLM: `llm_base_url` if set, else the managed local vLLM server (started if needed)."""
    if settings.llm_base_url:
        return OpenAICompatibleLLM.from_settings(settings)
    from assistant.server import VLLMServer

    url = VLLMServer(settings).ensure_running(progress)
    return OpenAICompatibleLLM.from_settings(settings, base_url=url)
