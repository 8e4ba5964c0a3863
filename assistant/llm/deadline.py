"""One deadline per answer and a cap on what a reply may send, whatever the server does.

`llm_timeout_s` bounds each read, so a server that sends a keep-alive every 20 s, or one token a
minute, was waited on forever; one that floods tokens past `max_tokens` was read to the end. These
limits sit in the HTTP transport under the OpenAI SDK, so they hold for every call (chat, streams,
log-probabilities, sync and async):
- the deadline: `deadline_s` from a request's start, or, inside an answer (`begin_answer`), from the
  answer's first request, shared by all its requests. Waits for headers read with the time left; a
  body still arriving at the deadline has its socket shut (a blocked read returns at once), and the
  request ends in `DeadlinePassed`;
- the cap: a reply body past `max_tokens` x BYTES_PER_TOKEN (+ BASE_BYTES) ends in `ReplyTooLong`.
"""
from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time

import httpx

# A streamed token with its top-20 log-probabilities is ~2 KB of SSE JSON from vLLM; twice that leaves room.
BYTES_PER_TOKEN = 4096
BASE_BYTES = 64 * 1024
DEFAULT_MAX_TOKENS = 1024  # when a request does not say (the cap is then 4.1 MB)
# The client stamps each request with its deadline when the call begins (the SDK's own work before the
# request reaches the transport counts too); the transport takes the stamp off before sending.
DEADLINE_HEADER = "x-paper-assistant-deadline"


class DeadlinePassed(httpx.ReadTimeout):
    """The answer's deadline passed while this request was waiting or reading."""


class ReplyTooLong(httpx.ReadError):
    """The server sent more than a reply of the requested length can hold."""


class ReplyLimits:
    """The deadline state one client shares across threads (an answer's support checks run in a pool)."""

    def __init__(self, deadline_s: float, bytes_per_token: int = BYTES_PER_TOKEN, base_bytes: int = BASE_BYTES):
        self.deadline_s = deadline_s
        self.bytes_per_token, self.base_bytes = bytes_per_token, base_bytes
        self._lock = threading.Lock()
        self._answers = 0  # nested begin_answer calls
        self._answer_until: float | None = None

    def begin_answer(self) -> None:
        """From here to `end_answer`, every request shares one deadline, counted from the first of them (a
        model server's start and the retrieval before it are not the model's time)."""
        with self._lock:
            self._answers += 1

    def end_answer(self) -> None:
        with self._lock:
            self._answers = max(0, self._answers - 1)
            if not self._answers:
                self._answer_until = None

    def until(self) -> float:
        """The monotonic time a request starting now must end by."""
        now = time.monotonic()
        with self._lock:
            if self._answers and self._answer_until is None:
                self._answer_until = now + self.deadline_s
            return min(now + self.deadline_s, self._answer_until if self._answer_until is not None else math.inf)

    def stamp(self) -> dict[str, str]:
        """Headers carrying a request's deadline from the call that makes it to the transport."""
        return {DEADLINE_HEADER: repr(self.until())}

    def until_of(self, request: httpx.Request) -> float:
        stamped = request.headers.pop(DEADLINE_HEADER, None)
        try:
            return float(stamped) if stamped else self.until()
        except ValueError:
            return self.until()

    def byte_cap(self, request: httpx.Request) -> int:
        try:
            body = json.loads(request.content or b"{}")
            max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)
        except (ValueError, TypeError, AttributeError):
            max_tokens = DEFAULT_MAX_TOKENS
        return self.base_bytes + self.bytes_per_token * max(1, max_tokens)


def _bounded_timeouts(request: httpx.Request, until: float) -> bool:
    """Every wait of this request (connect, headers, each read) at most the time left; whether that is shorter
    than the read timeout asked for (then a read timing out is the deadline passing)."""
    left = until - time.monotonic()
    if left <= 0:
        raise DeadlinePassed("the deadline passed before the request was sent", request=request)
    timeout = dict(request.extensions.get("timeout") or {})
    bound = left < (timeout.get("read") or math.inf)
    for key in ("connect", "read", "write", "pool"):
        timeout[key] = min(timeout.get(key) or math.inf, left)
    request.extensions["timeout"] = timeout
    return bound


class _Body:
    """What a guarded response body shares between its sync and async readers: the deadline, the cap, and
    the timer that shuts the socket when the deadline passes mid-read."""

    def __init__(self, request: httpx.Request, until: float, cap: int, network_stream, bound: bool = False) -> None:
        self.request, self.until, self.cap = request, until, cap
        self.bound = bound  # the read timeout is the time left: a read timing out is the deadline
        self.received = 0
        self.fired = False
        self._sock = network_stream.get_extra_info("socket") if network_stream is not None else None
        self._timer = threading.Timer(max(0.0, until - time.monotonic()), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.fired = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # a read blocked on it returns now
            except OSError:
                pass

    def ended_by_deadline(self, exc: BaseException) -> bool:
        """A read error that is the deadline: the timer shut the socket, or the read timeout was the time left."""
        return self.fired or (self.bound and isinstance(exc, httpx.TimeoutException))

    def passed(self) -> DeadlinePassed:
        return DeadlinePassed("the deadline passed while the reply was read", request=self.request)

    def take(self, chunk: bytes) -> bytes:
        if self.fired or time.monotonic() >= self.until:
            self._cut()
            raise self.passed()
        self.received += len(chunk)
        if self.received > self.cap:
            raise ReplyTooLong(f"more than {self.cap:,} bytes", request=self.request)
        return chunk

    def stop(self) -> None:
        self._timer.cancel()


class _GuardedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, body: _Body):
        self.inner, self.body = inner, body

    def __iter__(self):
        try:
            for chunk in self.inner:
                yield self.body.take(chunk)
        except (DeadlinePassed, ReplyTooLong):
            raise
        except (httpx.HTTPError, OSError) as exc:
            if self.body.ended_by_deadline(exc):
                raise self.body.passed() from exc
            raise
        if self.body.fired:  # the body "ended" because the timer shut the socket
            raise self.body.passed()

    def close(self) -> None:
        self.body.stop()
        self.inner.close()


class _GuardedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, body: _Body):
        self.inner, self.body = inner, body

    async def __aiter__(self):
        chunks = self.inner.__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, self.body.until - time.monotonic()))
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise self.body.passed() from None
            except (httpx.HTTPError, OSError) as exc:
                if self.body.ended_by_deadline(exc):
                    raise self.body.passed() from exc
                raise
            yield self.body.take(chunk)

    async def aclose(self) -> None:
        self.body.stop()
        await self.inner.aclose()


class GuardedTransport(httpx.BaseTransport):
    """httpx's transport with the limits applied to every request and response."""

    def __init__(self, limits: ReplyLimits, inner: httpx.BaseTransport | None = None):
        self.limits = limits
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        until = self.limits.until_of(request)
        bound = _bounded_timeouts(request, until)
        try:
            response = self.inner.handle_request(request)
        except httpx.TimeoutException as exc:
            if bound:  # the time left, not llm_timeout_s, ran out
                raise DeadlinePassed("the deadline passed before the reply began", request=request) from exc
            raise
        body = _Body(request, until, self.limits.byte_cap(request), response.extensions.get("network_stream"), bound)
        return httpx.Response(status_code=response.status_code, headers=response.headers,
                              stream=_GuardedStream(response.stream, body), extensions=response.extensions)

    def close(self) -> None:
        self.inner.close()


class GuardedAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: ReplyLimits, inner: httpx.AsyncBaseTransport | None = None):
        self.limits = limits
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        until = self.limits.until_of(request)
        bound = _bounded_timeouts(request, until)
        try:
            response = await asyncio.wait_for(self.inner.handle_async_request(request),
                                              max(0.0, until - time.monotonic()))
        except asyncio.TimeoutError:
            raise DeadlinePassed("the deadline passed before the reply began", request=request) from None
        body = _Body(request, until, self.limits.byte_cap(request), None, bound)  # async reads: cut by wait_for
        return httpx.Response(status_code=response.status_code, headers=response.headers,
                              stream=_GuardedAsyncStream(response.stream, body), extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def limit_hit(exc: BaseException | None) -> DeadlinePassed | ReplyTooLong | None:
    """The limit behind an error the SDK raised (it wraps transport errors), if one is."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (DeadlinePassed, ReplyTooLong)):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
