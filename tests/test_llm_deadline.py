"""One deadline per answer and a cap on what a reply may send, whatever the server does: a real misbehaving
server on loopback (tests/misbehaving_llm.py) that sends a keep-alive every 20 s and never answers, or floods
10 MB of tokens; the real client (every call shape, sync and async) and the real CLI's `ask`."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.llm.client import OpenAICompatibleLLM
from assistant.llm.protocol import LLMError
from tests.conftest import SMALL_IDS, free_port, make_mirror
from tests.misbehaving_llm import MODEL

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Why are the dot products scaled?"}]
DEADLINE_S = 3.0
SLACK_S = 1.5  # thread start, connection, the SDK's own bookkeeping on a shared 2-core machine


@pytest.fixture
def server(tmp_path):
    """start(mode, **env) -> base URL of a misbehaving server; its request log is tmp_path / "llm.log"."""
    procs = []

    def start(mode: str, **env: str) -> str:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "misbehaving_llm.py"), str(port)],
                                env={**os.environ, "LLM_MODE": mode, "LLM_LOG": str(tmp_path / "llm.log"), **env},
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


async def _astream(llm) -> str:
    return "".join([piece async for piece in llm.astream(MESSAGES, max_tokens=16)])


CALLS = {
    "chat": lambda llm: llm.complete(MESSAGES, max_tokens=16),
    "stream": lambda llm: "".join(llm.stream(MESSAGES, max_tokens=16)),
    "stream_choices": lambda llm: "".join(p for p, _ in llm.stream_choices(MESSAGES, max_tokens=16)),
    "yes_probability": lambda llm: llm.yes_probability(MESSAGES),
    "achat": lambda llm: asyncio.run(llm.acomplete(MESSAGES, max_tokens=16)),
    "astream": lambda llm: asyncio.run(_astream(llm)),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_keep_alives_every_20_s_end_at_the_deadline(server, call):
    llm = OpenAICompatibleLLM(server("keepalive", LLM_KEEPALIVE_S="20"), MODEL, timeout_s=300, deadline_s=DEADLINE_S)
    start = time.perf_counter()
    with pytest.raises(LLMError, match=r"did not finish within llm_deadline_s \(3 s\)"):
        CALLS[call](llm)
    took = time.perf_counter() - start
    assert DEADLINE_S - 0.2 <= took <= DEADLINE_S + SLACK_S, took


@pytest.mark.parametrize("call", list(CALLS))
def test_a_10_mb_token_flood_is_cut_at_the_cap(server, call, tmp_path):
    llm = OpenAICompatibleLLM(server("flood"), MODEL, timeout_s=300, deadline_s=60)
    start = time.perf_counter()
    with pytest.raises(LLMError, match="sent a reply longer than the tokens asked for"):
        CALLS[call](llm)
    assert time.perf_counter() - start < 5


def test_an_answers_requests_share_one_deadline(server):
    url = server("keepalive", LLM_KEEPALIVE_S="20")
    llm = OpenAICompatibleLLM(url, MODEL, timeout_s=300, deadline_s=DEADLINE_S)
    llm.begin_answer()
    try:
        with pytest.raises(LLMError, match="llm_deadline_s"):
            llm.complete(MESSAGES, max_tokens=16)
        start = time.perf_counter()
        with pytest.raises(LLMError, match="llm_deadline_s"):  # the answer's time is spent: at once
            "".join(llm.stream(MESSAGES, max_tokens=16))
        assert time.perf_counter() - start < 0.5
    finally:
        llm.end_answer()
    start = time.perf_counter()  # a new answer: a new deadline
    with pytest.raises(LLMError, match="llm_deadline_s"):
        llm.complete(MESSAGES, max_tokens=16)
    assert time.perf_counter() - start >= DEADLINE_S - 0.2


def test_a_well_behaved_server_is_untouched(server):
    llm = OpenAICompatibleLLM(server("reply", LLM_REPLY="[2][1]"), MODEL, timeout_s=30, deadline_s=DEADLINE_S)
    assert all(CALLS[c](llm) == "[2][1]" for c in ("chat", "stream", "stream_choices", "achat", "astream"))


# --- the whole answer through the real CLI
@pytest.fixture(scope="module")
def gqa_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("deadline")
    mirror = make_mirror(root / "mirror", [SMALL_IDS[1]])
    done = _cli(root / "home", "--mirror", str(mirror), "ingest", SMALL_IDS[1])
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "home"


def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    clean.update({"PAPER_ASSISTANT_INDEXES": '["bm25"]', **env})
    return subprocess.run([sys.executable, "-m", "assistant", "--home", str(home), "--offline", *args],
                          capture_output=True, text=True, timeout=600, env=clean, cwd=ROOT)


@pytest.mark.model
@pytest.mark.parametrize("mode,why", [("keepalive", "llm_deadline_s"), ("flood", "longer than the tokens asked for")])
def test_ask_ends_at_the_deadline_with_error_set(gqa_home, server, mode, why):
    url = server(mode, LLM_KEEPALIVE_S="20")
    start = time.perf_counter()
    done = _cli(gqa_home, "--llm-url", url, "--llm-model", MODEL, "ask",
                "How many key-value heads does grouped-query attention use?", "--json",
                PAPER_ASSISTANT_LLM_DEADLINE_S="5")
    took = time.perf_counter() - start
    answer = json.loads(done.stdout)
    assert done.returncode == 1 and why in answer["error"], (done.returncode, answer.get("error"), done.stderr[-2000:])
    assert took < 5 + 60, took  # the deadline plus loading the embedder and searching on a shared machine
    if answer["timings"].get("generate_s") is not None:
        assert answer["timings"]["generate_s"] <= 5 + SLACK_S
