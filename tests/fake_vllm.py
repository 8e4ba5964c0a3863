"""A stand-in for `python -m vllm.entrypoints.openai.api_server` in keep-alive tests: a real process on a
loopback port with vLLM's endpoints (/health, /v1/models, /metrics gauges, chat completions) and one
child process like vLLM's engine worker. It takes the same arguments; FAKE_VLLM_DELAY_S makes every
completion take that long (a request in flight), FAKE_VLLM_READY_S delays readiness (model loading),
FAKE_VLLM_STALE_METRICS keeps the running-requests gauge at 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = sys.argv[1:]
PORT = int(args[args.index("--port") + 1])
MODEL = args[args.index("--served-model-name") + 1]
DELAY_S = float(os.environ.get("FAKE_VLLM_DELAY_S", "0"))
running = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def _send(self, body: bytes, kind: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self._send(b"")
        elif self.path == "/v1/models":
            self._send(json.dumps({"data": [{"id": MODEL}]}).encode())
        elif self.path == "/metrics":  # FAKE_VLLM_STALE_METRICS: 0 throughout, as vLLM's gauge is in a long prefill
            shown = 0 if os.environ.get("FAKE_VLLM_STALE_METRICS") else running
            self._send(f'vllm:num_requests_running{{model_name="{MODEL}"}} {shown}.0\n'
                       f'vllm:num_requests_waiting{{model_name="{MODEL}"}} 0.0\n'.encode(), "text/plain")
        else:
            self.send_error(404)

    def do_POST(self):
        global running
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            running += 1
        try:
            time.sleep(DELAY_S)
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL,
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Yes."}}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
            self._send(json.dumps(reply).encode())
        finally:
            with lock:
                running -= 1


if __name__ == "__main__":
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # like vLLM's EngineCore
    time.sleep(float(os.environ.get("FAKE_VLLM_READY_S", "0")))
    try:
        ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
    finally:
        worker.kill()
