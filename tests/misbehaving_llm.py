"""An OpenAI-compatible chat server on a loopback port that misbehaves as told (LLM_MODE), run as its own
process: `python tests/misbehaving_llm.py PORT`.

- reply:     answers normally with LLM_REPLY (default "[1]"), streamed token by token or whole;
- error:     HTTP 500 whose message is LLM_ERROR (markup and escape sequences, by default);
- keepalive: sends headers, then only a keep-alive every LLM_KEEPALIVE_S (20) seconds, forever: an SSE
             comment on a stream, a space in a JSON body;
- flood:     streams LLM_FLOOD_BYTES (10 MB) of tokens as fast as it can, whatever max_tokens says.

Each request's start, how it ended and when, goes to LLM_LOG (one JSON line each), so a test can see when
the client hung up."""
from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("LLM_MODE", "reply")
REPLY = os.environ.get("LLM_REPLY", "[1]")
ERROR = os.environ.get("LLM_ERROR", "model exploded [/red] \x1b]0;PWNED\x07 \x1b[2J [link=http://evil.example]x[/link]")
KEEPALIVE_S = float(os.environ.get("LLM_KEEPALIVE_S", "20"))
FLOOD_BYTES = int(os.environ.get("LLM_FLOOD_BYTES", str(10 * 1024 * 1024)))
LOG = os.environ.get("LLM_LOG")
MODEL = "misbehaving"


def _log(**fields) -> None:
    if LOG:
        with open(LOG, "a") as fh:
            fh.write(json.dumps({"t": time.time(), **fields}) + "\n")


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    event = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
             "choices": [{"index": 0, "delta": {"content": content} if content is not None else {},
                          "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        stream = bool(request.get("stream"))
        _log(event="start", mode=MODE, stream=stream, max_tokens=request.get("max_tokens"))
        try:
            getattr(self, f"_{MODE}")(request, stream)
            _log(event="done", mode=MODE)
        except (BrokenPipeError, ConnectionResetError):
            _log(event="client_hung_up", mode=MODE)

    # --- modes
    def _reply(self, request, stream):
        if not stream:
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": MODEL,
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": REPLY}}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self._whole(200, body)
            return
        self._stream_headers()
        for piece in [REPLY[i:i + 2] for i in range(0, len(REPLY), 2)]:
            self._send_chunk(_chunk(piece))
        self._send_chunk(_chunk(None, "stop") + b"data: [DONE]\n\n")
        self._send_chunk(b"")

    def _error(self, request, stream):
        self._whole(500, json.dumps({"object": "error", "message": ERROR, "type": "InternalServerError",
                                     "code": 500}).encode())

    def _keepalive(self, request, stream):
        if stream:
            self._stream_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        while True:
            self._send_chunk(b": keep-alive\n\n" if stream else b" ")
            time.sleep(KEEPALIVE_S)

    def _flood(self, request, stream):
        piece = "flood " * 16
        if not stream:
            content = piece * (FLOOD_BYTES // len(piece))
            self._whole(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": MODEL,
                                         "choices": [{"index": 0, "finish_reason": "stop",
                                                      "message": {"role": "assistant", "content": content}}]}).encode())
            return
        self._stream_headers()
        sent = 0
        event = _chunk(piece)
        while sent < FLOOD_BYTES:
            self._send_chunk(event * 64)
            sent += len(event) * 64
        self._send_chunk(_chunk(None, "stop") + b"data: [DONE]\n\n")
        self._send_chunk(b"")

    # --- plumbing
    def _whole(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream_headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
