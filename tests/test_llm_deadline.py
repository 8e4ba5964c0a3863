"""One deadline per answer and a cap on what a reply may send, whatever the server does: a real misbehaving
server on loopback (tests/misbehaving_llm.py) that sends a keep-alive every 20 s and never answers, or floods
10 MB of tokens; the real client (every call shape, sync and async) and the real CLI's `ask`."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from assistant.llm.client import OpenAICompatibleLLM
from assistant.llm.protocol import LLMError
from tests.conftest import SMALL_IDS, make_mirror, run_cli
from tests.misbehaving_llm import MODEL

MESSAGES = [{"role": "user", "content": "Why are the dot products scaled?"}]
DEADLINE_S = 3.0
SLACK_S = 1.5  # thread start, connection, the SDK's own bookkeeping on a shared 2-core machine


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
def test_keep_alives_every_20_s_end_at_the_deadline(misbehaving_llm, call):
    llm = OpenAICompatibleLLM(misbehaving_llm("keepalive", LLM_KEEPALIVE_S="20"), MODEL, timeout_s=300, deadline_s=DEADLINE_S)
    start = time.perf_counter()
    with pytest.raises(LLMError, match=r"did not finish within llm_deadline_s \(3 s\)"):
        CALLS[call](llm)
    took = time.perf_counter() - start
    assert DEADLINE_S - 0.2 <= took <= DEADLINE_S + SLACK_S, took


@pytest.mark.parametrize("call", list(CALLS))
def test_a_10_mb_token_flood_is_cut_at_the_cap(misbehaving_llm, call, tmp_path):
    llm = OpenAICompatibleLLM(misbehaving_llm("flood"), MODEL, timeout_s=300, deadline_s=60)
    start = time.perf_counter()
    with pytest.raises(LLMError, match="sent a reply longer than the tokens asked for"):
        CALLS[call](llm)
    assert time.perf_counter() - start < 5


def test_an_answers_requests_share_one_deadline(misbehaving_llm):
    url = misbehaving_llm("keepalive", LLM_KEEPALIVE_S="20")
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


def test_a_well_behaved_server_is_untouched(misbehaving_llm):
    llm = OpenAICompatibleLLM(misbehaving_llm("reply", LLM_REPLY="[2][1]"), MODEL, timeout_s=30, deadline_s=DEADLINE_S)
    assert all(CALLS[c](llm) == "[2][1]" for c in ("chat", "stream", "stream_choices", "achat", "astream"))


# --- the whole answer through the real CLI
@pytest.fixture(scope="module")
def gqa_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("deadline")
    mirror = make_mirror(root / "mirror", [SMALL_IDS[1]])
    done = run_cli(root / "home", "ingest", SMALL_IDS[1], mirror=mirror)
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "home"


@pytest.mark.model
@pytest.mark.parametrize("mode,why", [("keepalive", "llm_deadline_s"), ("flood", "longer than the tokens asked for")])
def test_ask_ends_at_the_deadline_with_error_set(gqa_home, misbehaving_llm, mode, why):
    url = misbehaving_llm(mode, LLM_KEEPALIVE_S="20")
    start = time.perf_counter()
    done = run_cli(gqa_home, "--llm-url", url, "--llm-model", MODEL, "ask",
                   "How many key-value heads does grouped-query attention use?", "--json",
                   PAPER_ASSISTANT_LLM_DEADLINE_S="5")
    took = time.perf_counter() - start
    answer = json.loads(done.stdout)
    assert done.returncode == 1 and why in answer["error"], (done.returncode, answer.get("error"), done.stderr[-2000:])
    assert took < 5 + 60, took  # the deadline plus loading the embedder and searching on a shared machine
    if answer["timings"].get("generate_s") is not None:
        assert answer["timings"]["generate_s"] <= 5 + SLACK_S
