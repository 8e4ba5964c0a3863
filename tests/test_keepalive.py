"""Keep-alive of the managed server, fast: real processes (the supervisor, a stand-in server with vLLM's
endpoints on a loopback port: tests/fake_vllm.py), real requests through the real client. The same
behaviour with the real vLLM server and the CLI is in test_server.py (marked llm)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from foundation.config import Settings
from assistant.llm import procs
from assistant.llm.server import VLLMServer, make_llm
from tests.conftest import free_port

ASK = [{"role": "user", "content": "Is this a test?"}]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_settings(tmp_path):
    """Settings whose managed server is tests/fake_vllm.py (its command line names vllm, as pid() expects)."""
    model = tmp_path / "qwen2.5-coder-0.5b-instruct"
    model.mkdir()
    (model / "config.json").write_text("{}")
    python = tmp_path / "fake-vllm-python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {ROOT / 'tests' / 'fake_vllm.py'} \"$@\"\n")
    python.chmod(0o755)
    made: list[Settings] = []

    def build(**overrides) -> Settings:
        values = dict(home=tmp_path / "home", llm_model="qwen2.5-coder-0.5b-instruct", llm_model_path=model,
                      vllm_python=python, vllm_port=free_port(), vllm_start_timeout_s=60.0)
        made.append(Settings(**{**values, **overrides}))
        return made[-1]

    yield build
    for settings in made:  # stop whatever a test left running
        VLLMServer(settings).stop()


def wait_until(check, timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every_s)
    return check()


def running(settings: Settings) -> bool:
    return VLLMServer(settings).pid() is not None


def test_idle_server_stops_itself_and_the_next_request_starts_it_again(fake_settings) -> None:
    settings = fake_settings(server_keep_alive_s=2)
    notices: list[str] = []
    llm = make_llm(settings, announce=notices.append)
    server = VLLMServer(settings)
    first = server.pid()
    family = procs.family(first)
    assert len(family) >= 2  # the server and its worker
    assert notices and notices[0].startswith("started the local model server (0.5B")
    assert "stops after 2 s without a request" in notices[0]
    assert llm.complete(ASK) == "Yes."

    assert wait_until(lambda: not running(settings), 30), "the idle server kept running"
    assert wait_until(lambda: not any(procs.alive(pid) for pid in family), 10)  # its worker went too
    assert "keep-alive: stopping the server" in server.log_path.read_text()
    assert wait_until(lambda: not server.lifetime.state_path.exists(), 10)  # the supervisor cleaned up

    assert llm.complete(ASK) == "Yes."  # the same client: the server comes back
    # two starts announced (the first start's speed probe may add its advice: a fake server on a busy machine
    # can measure over the 10 s it is given for)
    assert server.pid() not in (None, first) and sum(n.startswith("started the local") for n in notices) == 2, notices


@pytest.mark.slow  # ~13 s each by design: two 5 s completions against a 2 s keep-alive
@pytest.mark.parametrize("stale_gauge", [False, True])
def test_requests_restart_the_clock_and_one_in_flight_is_not_cut(fake_settings, monkeypatch, stale_gauge) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY_S", "5")  # each completion takes 5 s: longer than the keep-alive
    if stale_gauge:  # vLLM's running-requests gauge reads 0 through a long CPU prefill: our own lock must say it
        monkeypatch.setenv("FAKE_VLLM_STALE_METRICS", "1")
    settings = fake_settings(server_keep_alive_s=2)
    llm = make_llm(settings, announce=lambda _: None)
    pid = VLLMServer(settings).pid()
    assert llm.complete(ASK) == "Yes."  # the supervisor woke mid-request, saw it running and waited
    assert llm.complete(ASK) == "Yes."
    assert VLLMServer(settings).pid() == pid  # one server throughout
    assert wait_until(lambda: not running(settings), 30)


def _owner_script(settings: Settings, **make_llm_args) -> str:
    return textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from foundation.config import Settings
        from assistant.llm.server import make_llm
        settings = Settings.model_validate_json({settings.model_dump_json()!r})
        make_llm(settings, announce=lambda _: None, **{make_llm_args!r}).complete([{{"role": "user", "content": "hi"}}])
    """)


@pytest.mark.parametrize("keep_alive_s, with_process, stops", [
    (0, False, True),       # 0: the server lives as long as the command that started it
    (300, True, True),      # a session (the TUI) ends: its server stops without waiting for keep-alive
    (-1, True, False),      # negative: never, also for a session
    (300, False, False),    # a command ends: the server waits for more commands
])
def test_what_happens_when_the_starting_process_ends(fake_settings, keep_alive_s, with_process, stops) -> None:
    settings = fake_settings(server_keep_alive_s=keep_alive_s)
    done = subprocess.run([sys.executable, "-c", _owner_script(settings, stop_with_process=with_process)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if stops:
        assert wait_until(lambda: not running(settings), 30), "the server outlived its owner"
    else:
        time.sleep(3)
        assert running(settings)


def test_server_start_keeps_a_running_server_from_keep_alive(fake_settings) -> None:
    settings = fake_settings(server_keep_alive_s=2)
    make_llm(settings, announce=lambda _: None)
    server = VLLMServer(settings)
    supervisor = server.lifetime.read()["supervisor_pid"]
    server.ensure_running(keep=True)  # what `paper-assistant server start` does
    assert wait_until(lambda: not procs.alive(supervisor), 10)  # retired at once, not at its next wake
    time.sleep(4)
    assert running(settings) and server.status().stops == "kept"


def test_status_reports_memory_and_time_left(fake_settings) -> None:
    settings = fake_settings(server_keep_alive_s=120)
    make_llm(settings, announce=lambda _: None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({"PAPER_ASSISTANT_" + k.upper(): str(v) for k, v in settings.model_dump(mode="json").items()
                if k in ("home", "llm_model", "llm_model_path", "vllm_python", "vllm_port", "server_keep_alive_s")})
    done = subprocess.run([sys.executable, "-m", "assistant", "server", "status", "--json"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["running"] and status["model"] == settings.llm_model and status["processes"] >= 2
    assert status["rss_bytes"] > 10_000_000 and 0 < status["pss_bytes"] <= status["rss_bytes"]
    assert status["stops"] == "idle" and 100 < status["stops_in_s"] <= 120
    human = subprocess.run([sys.executable, "-m", "assistant", "server", "status"], capture_output=True,
                           text=True, timeout=120, env=env, cwd=ROOT).stdout
    assert "running: qwen2.5-coder-0.5b-instruct" in human and re.search(r"stops in 1\d\d s unless a request", human)
    stopped = subprocess.run([sys.executable, "-m", "assistant", "server", "stop"], capture_output=True,
                             text=True, timeout=120, env=env, cwd=ROOT)
    assert stopped.stdout.strip() == "stopped" and not running(settings)


def test_a_server_this_app_did_not_start_is_never_stopped(fake_settings) -> None:
    settings = fake_settings(server_keep_alive_s=1)
    other = fake_settings(home=settings.home.parent / "elsewhere", vllm_port=settings.vllm_port,
                          server_keep_alive_s=-1)
    make_llm(other, announce=lambda _: None)  # someone else's server on the port, in another home
    llm = make_llm(settings, announce=lambda _: pytest.fail("nothing was started"))
    assert llm.complete(ASK) == "Yes."
    time.sleep(3)
    assert running(other)
    assert VLLMServer(settings).status().stops == "external"
    touched = VLLMServer(settings).lifetime.touch_path
    touched.unlink(missing_ok=True)
    via_url = make_llm(settings.model_copy(update={"llm_base_url": f"http://127.0.0.1:{settings.vllm_port}/v1"}))
    assert via_url.complete(ASK) == "Yes." and not touched.exists()  # llm_base_url: no keep-alive bookkeeping
