"""The OpenAI-compatible client: against the real vLLM server (marked llm) and a tiny stdlib server
on 127.0.0.1 that speaks the same wire format and misbehaves on purpose."""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Literal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel

from assistant.llm.client import OpenAICompatibleLLM
from assistant.llm.server import make_llm
from assistant.llm.protocol import LLM, LLMError
from assistant.llm.structured import ask_json_sync
from tests.conftest import free_port

ASK = [{"role": "user", "content": "Name three primary colors, comma-separated."}]
class Verdict(BaseModel):
    label: Literal["supported", "unsupported"]


VERDICT = {"title": "Verdict", "type": "object", "additionalProperties": False, "required": ["label"],
           "properties": {"label": {"type": "string", "enum": ["supported", "unsupported"]}}}


# --- a tiny real server: each request takes the next behaviour from `script`
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        kind = self.server.script.pop(0)  # type: ignore[attr-defined]
        if kind == "error":
            self._send(400, {"error": {"message": "max_tokens is too large", "type": "BadRequestError"}})
        elif kind == "html":
            data = b"<html><body>Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif kind == "500":
            self._send(500, {"error": {"message": "engine crashed", "type": "InternalServerError"}})
        elif kind.startswith("events:"):  # a stream of the given data payloads, then [DONE]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for payload in json.loads(kind[7:]):
                self.wfile.write(f"data: {payload}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
        elif kind.startswith("text:"):
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": kind[5:]},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
        elif kind in ("drop", "eof"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if kind == "drop":
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            for piece in ("Red, ", "green"):
                event = f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n".encode()
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n" if kind == "drop" else event)
                self.wfile.flush()
            if kind == "drop":
                self.wfile.write(b"40\r\ndata: {\"cho")  # half a chunk, then the connection goes away
                self.wfile.flush()
            self.close_connection = True
        else:
            raise AssertionError(kind)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    server.script = []  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: ThreadingHTTPServer, *script: str) -> OpenAICompatibleLLM:
    server.script.extend(script)  # type: ignore[attr-defined]
    return OpenAICompatibleLLM(f"http://127.0.0.1:{server.server_port}/v1", "fake", timeout_s=10.0)


# --- real vLLM
@pytest.mark.llm
def test_complete_and_stream_agree(llm: OpenAICompatibleLLM) -> None:
    assert isinstance(llm, LLM)
    completion = llm.chat(ASK, max_tokens=24)
    assert completion.text.strip() and completion.completion_tokens > 0
    pieces = list(llm.stream(ASK, max_tokens=24))
    assert len(pieces) > 3
    assert "".join(pieces) == completion.text  # temperature 0: the same tokens


@pytest.mark.llm
def test_streamed_choices_carry_each_tokens_candidates_under_a_regex(llm: OpenAICompatibleLLM) -> None:
    pick = [{"role": "user", "content": "Quotes:\n[1] Water boils at 100 C at sea level.\n[2] Ice melts at 0 C.\n"
             "Reply with the number of the quote that says when water boils, like [2]."}]
    body = {"structured_outputs": {"regex": r"\[(?:1|2)\](?:\[(?:1|2)\]){0,2}"}}
    whole = llm.chat(pick, max_tokens=16, extra_body=body).text
    steps = list(llm.stream_choices(pick, max_tokens=16, extra_body=body))
    assert "".join(piece for piece, _ in steps) == whole  # temperature 0: the same tokens, streamed
    candidates = [c for _, cs in steps for c in cs]
    # Tokens the regex forbids come back with probability 0: the weight is over what may be written.
    assert len(candidates) >= 3 and all(0.0 <= p <= 1.0 and sum(c.values()) <= 1.0 + 1e-6 for c in candidates
                                        for p in c.values())
    first = next(c for c in candidates if max(c, key=c.__getitem__).isdigit())
    assert max(first, key=first.__getitem__) == whole[1] and first["1"] + first["2"] > 0.99


@pytest.mark.llm
def test_json_schema_constrains_to_enum(llm: OpenAICompatibleLLM) -> None:
    messages = [{"role": "user", "content": "Passage: 'Water boils at 100 C at sea level.' "
                 "Sentence: 'Water boils at 100 C at sea level.' Is the sentence supported by the passage?"}]
    result = ask_json_sync(llm, messages, Verdict, VERDICT, max_tokens=32)
    assert result.value is not None and result.value.label in {"supported", "unsupported"}


@pytest.mark.llm
def test_concurrent_async_requests(llm: OpenAICompatibleLLM) -> None:
    async def both() -> list[str]:
        return await asyncio.gather(llm.acomplete(ASK, max_tokens=12),
                                    llm.acomplete([{"role": "user", "content": "Say hi."}], max_tokens=12))

    first, second = asyncio.run(both())
    assert first.strip() and second.strip()


# --- the misbehaving stdlib server
@pytest.mark.parametrize("kind", ["drop", "eof"])
def test_stream_break_raises_after_partial_text(fake_server: ThreadingHTTPServer, kind: str) -> None:
    got: list[str] = []
    with pytest.raises(LLMError, match="stream"):
        for piece in _client(fake_server, kind).stream(ASK, max_tokens=8):
            got.append(piece)
    assert got == ["Red, ", "green"]


@pytest.mark.parametrize("kind", ["drop", "eof"])
def test_streamed_choices_break_is_an_error_after_partial_text(fake_server: ThreadingHTTPServer, kind: str) -> None:
    got: list[tuple[str, list]] = []
    with pytest.raises(LLMError, match="stream"):
        for step in _client(fake_server, kind).stream_choices(ASK, max_tokens=8):
            got.append(step)
    assert got == [("Red, ", []), ("green", [])]  # this server sends no log-probabilities: text alone


def test_async_stream_break_raises_after_partial_text(fake_server: ThreadingHTTPServer) -> None:
    llm = _client(fake_server, "drop")
    got: list[str] = []

    async def consume() -> None:
        async for piece in llm.astream(ASK, max_tokens=8):
            got.append(piece)

    with pytest.raises(LLMError, match="stream"):
        asyncio.run(consume())
    assert got == ["Red, ", "green"]


def test_malformed_json_is_retried_once_then_reported(fake_server: ThreadingHTTPServer) -> None:
    llm = _client(fake_server, "text:{\"label\": \"supp", "text:not json at all")
    result = ask_json_sync(llm, ASK, Verdict, VERDICT, max_tokens=16, name="verdict")
    assert result.value is None and result.attempts == 2 and "unusable JSON" in result.error
    assert len(fake_server.requests) == 2  # type: ignore[attr-defined]
    sent = fake_server.requests[0]["response_format"]  # type: ignore[attr-defined]
    assert sent == {"type": "json_schema", "json_schema": {"name": "Verdict", "schema": VERDICT, "strict": True}}


def test_malformed_json_then_valid(fake_server: ThreadingHTTPServer) -> None:
    llm = _client(fake_server, "text:{oops", 'text:{"label": "supported"}')
    result = ask_json_sync(llm, ASK, Verdict, VERDICT, max_tokens=16)
    assert result.value == Verdict(label="supported") and result.attempts == 2


@pytest.mark.parametrize("payloads", [["null"], ["[1, 2, 3]"], ['{"choices": [{"delta": "a string"}]}'],
                                      ['{"choices": [{"delta": {"content": 7}}]}'], ["{not json"]])
def test_malformed_stream_events_are_clear_errors(fake_server: ThreadingHTTPServer, payloads: list[str]) -> None:
    llm = _client(fake_server, "events:" + json.dumps(payloads))
    with pytest.raises(LLMError, match="malformed stream event|stream"):
        list(llm.stream(ASK, max_tokens=8))


@pytest.mark.parametrize("kind,message", [("html", "unreadable reply|unusable reply"), ("500", "HTTP 500: engine crashed")])
def test_html_and_server_errors_are_clear(fake_server: ThreadingHTTPServer, kind: str, message: str) -> None:
    with pytest.raises(LLMError, match=message):
        _client(fake_server, kind).complete(ASK)


def test_http_error_and_empty_reply(fake_server: ThreadingHTTPServer) -> None:
    llm = _client(fake_server, "error", "text:")
    with pytest.raises(LLMError, match="HTTP 400: max_tokens is too large"):
        llm.complete(ASK)
    with pytest.raises(LLMError, match="empty reply"):
        llm.complete(ASK)


def test_connection_refused_is_clear() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatibleLLM(url, "nothing")
    with pytest.raises(LLMError, match=f"no LLM server at {url}: start one or unset llm_base_url"):
        llm.complete(ASK)
    with pytest.raises(LLMError, match="no LLM server"):
        list(llm.stream(ASK))


def test_make_llm_uses_base_url_without_starting_a_server(settings_for) -> None:
    settings = settings_for(llm_base_url="http://127.0.0.1:9/v1", llm_model="m", llm_timeout_s=7.0)
    llm = make_llm(settings)
    assert isinstance(llm, OpenAICompatibleLLM)
    assert (llm.base_url, llm.model, llm.timeout_s) == ("http://127.0.0.1:9/v1", "m", 7.0)
    assert not (settings.home / "vllm.pid").exists()
