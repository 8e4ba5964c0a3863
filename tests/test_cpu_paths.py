"""Which path a CPU gets: the ISA cap that makes an AVX-512 machine choose and compute as an AVX2 one, the
server's environment under it, and the first start's measurement (record, advice) against a loopback server."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from assistant.llm.probe import (ANSWER_PROMPT_TOKENS, ANSWER_REPLY_TOKENS, Probe, ProbeRecord, advice, measure,
                                  probe_once)
from assistant.llm.server import ISA_CAP_SHIM, VLLMServer
from foundation import hardware
from foundation.config import Settings


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")


def test_the_cap_hides_avx512_and_vnni(capped) -> None:
    flags = hardware._cpu_flags()
    assert not any(f.startswith(("avx512", "amx")) for f in flags) and "avx_vnni" not in flags
    assert not hardware.cpu_has_int8_dot() and not hardware.cpu_has_native_bf16()
    kind = hardware.cpu_kind()
    assert kind.startswith(("AVX2", "older"))
    if "avx512f" in hardware._real_cpu_flags():
        assert "capped from AVX-512" in kind and "capped" in hardware.cpu_description()


def test_avx2_serves_float32_and_loads_vllms_avx2_kernels(capped, tmp_path: Path) -> None:
    """Capped, the server chooses as on an AVX2 CPU: float32 weights, no int8 (it decodes at 0.38x there), and
    its environment makes oneDNN, ATen, MKL and vLLM's own kernels AVX2 ones."""
    model = tmp_path / "qwen2.5-coder-1.5b-instruct"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 28, "num_attention_heads": 12,
                                                   "num_key_value_heads": 2, "hidden_size": 1536}))
    (model / "model.safetensors").write_bytes(b"")
    server = VLLMServer(Settings(home=tmp_path / "home", llm_model=model.name, llm_model_path=model,
                                 vllm_python=Path(sys.executable)))
    assert not server.int8() and server.dtype() == "float32" and server.weights() == "float32"
    env = server.environment()
    assert env["PYTHONPATH"].split(":")[0] == str(ISA_CAP_SHIM) and env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"


def test_the_shim_makes_torch_report_no_avx512(capped, monkeypatch) -> None:
    import subprocess

    monkeypatch.setenv("PYTHONPATH", str(ISA_CAP_SHIM))
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cpu._is_avx512_supported())"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


class _SlowChat(BaseHTTPRequestHandler):
    """An OpenAI-style endpoint: 300 prompt tokens after 0.3 s (1,000 tokens/s); streamed, a token every 0.1 s."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body.get("stream"):
            assert body["max_tokens"] == 1
            threading.Event().wait(0.3)
            reply = json.dumps({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 300}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply.encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for _ in range(body["max_tokens"]):
            self.wfile.write(f"data: {json.dumps({'choices': [{'delta': {'content': 'x'}}]})}\n\n".encode())
            self.wfile.flush()
            threading.Event().wait(0.1)
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args) -> None:
        pass


def test_measure_record_and_advice(tmp_path: Path) -> None:
    httpd = HTTPServer(("127.0.0.1", 0), _SlowChat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/v1"
        tokens, seconds, decode = measure(url, "m")
        said_once: list[str] = []
        kept = ProbeRecord(tmp_path / "kept.json")
        done = probe_once(kept, url, "AVX2", "m", "float32", tmp_path / "qwen2.5-coder-1.5b-instruct", said_once.append)
        assert done is not None and kept.get(done.key()) == done and said_once == []  # ~1 s: nothing to say
        assert probe_once(kept, "http://127.0.0.1:9/v1", "AVX2", "m", "int8", tmp_path, said_once.append) is None
    finally:
        httpd.shutdown()
    assert tokens == 300 and 0.3 <= seconds < 5 and 5 < decode <= 10.5
    fast = Probe(cpu="AVX2", model="m", weights="float32", prompt_tokens=tokens, seconds=seconds,
                 decode_tok_s=decode, measured_at=0)
    assert fast.first_token_s == pytest.approx(ANSWER_PROMPT_TOKENS * seconds / tokens)
    assert fast.answer_s == pytest.approx(fast.first_token_s + ANSWER_REPLY_TOKENS / decode)
    big = tmp_path / "qwen2.5-coder-1.5b-instruct"
    assert advice(fast, big) == ""  # fast enough: nothing to say
    slow = fast.model_copy(update={"seconds": 10.0})  # 30 tokens/s: 20 s to the first token
    said = advice(slow, big)
    assert "~20 s to an answer's first token" in said and str(tmp_path / "qwen2.5-coder-0.5b-instruct") in said
    assert "0.5B" not in advice(slow, tmp_path / "qwen2.5-coder-0.5b-instruct")  # the small one has no smaller
    record = ProbeRecord(tmp_path / "probes.json")
    assert record.get(slow.key()) is None
    record.put(slow)
    record.put(fast.model_copy(update={"cpu": "AVX-512 BF16/VNNI"}))
    assert record.get(slow.key()).seconds == 10.0 and len(record.all()) == 2
    (tmp_path / "probes.json").write_text("{garbled")
    assert record.all() == {}  # unreadable: measured again at the next start, never a crash
