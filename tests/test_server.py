"""The managed vLLM server: reuse, clear errors, stale pidfiles, start failures."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foundation.config import Settings
from assistant.llm.protocol import LLMError
from assistant.llm.server import VLLMServer
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    model = tmp_path / "qwen2.5-coder-0.5b-instruct"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    values: dict = {"home": tmp_path / "home", "llm_model": "m", "llm_model_path": model,
                    "vllm_port": free_port(), "vllm_python": Path(sys.executable), "vllm_start_timeout_s": 30.0}
    values.update(overrides)
    return Settings(**values)


def _vllm_processes() -> set[int]:
    """Pids of vLLM OpenAI servers running on this machine."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"vllm.entrypoints.openai.api_server" in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
            except OSError:
                pass
    return found


def _at(vllm_settings: Settings, vllm_url: str) -> Settings:
    """The session's settings pointed at the port vllm_url really uses (the fixture may reuse a dev server)."""
    return vllm_settings.model_copy(update={"vllm_port": int(vllm_url.rsplit(":", 1)[1].split("/")[0])})


@pytest.mark.llm
def test_second_ensure_running_reuses_the_server(vllm_settings: Settings, vllm_url: str) -> None:
    settings = _at(vllm_settings, vllm_url)
    running = _vllm_processes()
    assert running, "the fixture's server runs"
    start = time.monotonic()
    again = VLLMServer(settings)
    assert again.ensure_running() == vllm_url
    assert time.monotonic() - start < 3.0
    assert _vllm_processes() == running and again.is_healthy()  # no second server was started
    assert again.served_models() == [settings.llm_model]


@pytest.mark.llm
def test_a_server_for_another_model_is_not_reused(vllm_settings: Settings, vllm_url: str) -> None:
    other = _at(vllm_settings, vllm_url).model_copy(update={"llm_model": "another-model"})
    with pytest.raises(LLMError, match="serves .*qwen2.5-coder-0.5b-instruct.*not another-model"):
        VLLMServer(other).ensure_running()


def test_missing_model_folder_names_the_make_target(tmp_path: Path) -> None:
    settings = _settings(tmp_path, llm_model_path=tmp_path / "absent" / "qwen2.5-coder-0.5b-instruct")
    with pytest.raises(LLMError, match=r"not found: run `make setup-model-small`"):
        VLLMServer(settings).ensure_running()
    large = _settings(tmp_path, llm_model_path=tmp_path / "qwen2.5-coder-1.5b-instruct")
    with pytest.raises(LLMError, match=r"make setup-model-large"):
        VLLMServer(large).ensure_running()


def test_missing_vllm_venv_says_make_setup(tmp_path: Path) -> None:
    settings = _settings(tmp_path, vllm_python=tmp_path / "no-venv" / "bin" / "python")
    with pytest.raises(LLMError, match=r"vLLM virtualenv is missing .* run `make setup`"):
        VLLMServer(settings).ensure_running()


def test_a_process_dying_at_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-vllm-python"
    fake.write_text("#!/bin/sh\necho 'RuntimeError: no such model architecture' >&2\nexit 3\n")
    fake.chmod(0o755)
    server = VLLMServer(_settings(tmp_path, vllm_python=fake))
    with pytest.raises(LLMError, match="(?s)exited while starting.*no such model architecture"):
        server.ensure_running()
    assert not server.pid_path.exists()


def test_stale_pidfile_is_cleaned(tmp_path: Path) -> None:
    server = VLLMServer(_settings(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    server.pid_path.parent.mkdir(parents=True, exist_ok=True)
    server.pid_path.write_text(f"{dead.pid} {server.port} m\n")
    assert server.pid() is None and not server.pid_path.exists()
    assert server.stop() is False


def test_port_taken_by_something_else(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = VLLMServer(_settings(tmp_path, vllm_port=sock.getsockname()[1]))
        with pytest.raises(LLMError, match="is taken by something that is not a healthy vLLM server"):
            server.ensure_running()


def test_command_and_environment(tmp_path: Path) -> None:
    server = VLLMServer(_settings(tmp_path, vllm_kv_cache_gib=3, vllm_max_model_len=2048))
    cmd = server.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert ["--served-model-name", "m"] == cmd[cmd.index("--served-model-name"):][:2]
    assert "--enforce-eager" in cmd and ["--max-model-len", "2048"] == cmd[cmd.index("--max-model-len"):][:2]
    assert ["--kv-cache-memory-bytes", str(3 * 2**30)] == cmd[cmd.index("--kv-cache-memory-bytes"):][:2]
    env = server.environment()
    assert "VLLM_CPU_KVCACHE_SPACE" not in env and env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"


# --- keep-alive with the real server and the real CLI (issue 14)
KEEP_ALIVE_QUESTION = "How does dynamic masking differ from static masking in RoBERTa?"


@pytest.fixture(scope="module")
def one_paper_home(tmp_path_factory, embedder) -> Path:
    """A tiny index (RoBERTa, dense + BM25) that the CLI asks over; each test copies it."""
    from assistant.api import Assistant
    from tests.conftest import SMALL_IDS, make_mirror

    root = tmp_path_factory.mktemp("keepalive-index")
    settings = Settings(home=root / "home", mirror=make_mirror(root / "mirror", SMALL_IDS[:1]), offline=True,
                        indexes=["bm25"])
    a = Assistant(settings, embedder=embedder)
    assert a.ingest([SMALL_IDS[0]])[0].status.value == "ok"
    a.close()
    return settings.home


def _cli_env(home: Path, port: int, keep_alive_s: float) -> dict[str, str]:
    from tests.conftest import SMALL_MODEL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({"PAPER_ASSISTANT_HOME": str(home), "PAPER_ASSISTANT_OFFLINE": "true",
                "PAPER_ASSISTANT_INDEXES": '["bm25"]', "PAPER_ASSISTANT_LLM_MODEL": SMALL_MODEL,
                "PAPER_ASSISTANT_LLM_MODEL_PATH": str(ROOT / ".models" / SMALL_MODEL),
                "PAPER_ASSISTANT_VLLM_PORT": str(port), "PAPER_ASSISTANT_LLM_MAX_TOKENS": "48",
                "PAPER_ASSISTANT_VLLM_KV_CACHE_GIB": "1",  # beside a developer's server and the suite: 1 GiB less
                "PAPER_ASSISTANT_SERVER_KEEP_ALIVE_S": str(keep_alive_s)})
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=900,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _status(env: dict[str, str]) -> dict:
    return json.loads(_cli(env, "server", "status", "--json").stdout)


def _alive_family(pids: list[int]) -> list[int]:
    from assistant.llm import procs

    return [pid for pid in pids if procs.alive(pid)]


@pytest.fixture
def keepalive_home(tmp_path, one_paper_home):
    """A copy of the one-paper index and a port of its own; the server it gets is stopped afterwards."""
    home = tmp_path / "home"
    shutil.copytree(one_paper_home, home)
    port = free_port()
    yield home, port
    VLLMServer(Settings(home=home, vllm_port=port)).stop()


@pytest.mark.llm
def test_ask_starts_a_server_that_stops_after_keep_alive(keepalive_home) -> None:
    from assistant.llm import procs

    home, port = keepalive_home
    env = _cli_env(home, port, keep_alive_s=20)
    first = _cli(env, "ask", KEEP_ALIVE_QUESTION, "--json")
    assert re.search(r"started the local model server \(0\.5B, (int8, )?~", first.stderr)  # int8 where the CPU has VNNI
    assert "it stops after 20 s without a request" in first.stderr
    status = _status(env)
    assert status["running"] and status["stops"] == "idle" and status["processes"] >= 2
    assert status["rss_bytes"] > 1_000_000_000  # a real model's memory, summed over its processes
    assert 0 < status["stops_in_s"] <= 20
    # The first start measured this CPU's prefill on the path it chose, once, and status says it.
    probes = json.loads((home / "server-probes.json").read_text())
    (probe,) = probes.values()
    assert probe["prompt_tokens"] > 100 and probe["seconds"] > 0 and "0.5b" in probe["model"]
    assert re.match(r"prefill \d+ tokens/s, decode [\d.]+ tokens/s on this CPU \((int8 weights, )?\w+",
                    status["speed"]), status["speed"]
    assert probe["decode_tok_s"] > 0
    family = procs.family(status["pid"])
    deadline = time.monotonic() + 60
    while _alive_family(family) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _alive_family(family), "the server outlived keep-alive by more than 60 s"
    assert not _status(env)["running"]


@pytest.mark.llm
def test_a_second_ask_inside_the_window_reuses_the_server_and_restarts_the_clock(keepalive_home) -> None:
    # A window longer than 20 s: between two CLI asks lie one's exit and the other's start-up (~10-20 s
    # on 2 busy cores), and this test is about reuse, not about the deadline.
    home, port = keepalive_home
    env = _cli_env(home, port, keep_alive_s=120)
    first = _cli(env, "ask", KEEP_ALIVE_QUESTION, "--json")
    assert "started the local model server" in first.stderr
    time.sleep(5)
    before = VLLMServer(Settings(home=home, vllm_port=port)).status()
    second = _cli(env, "ask", KEEP_ALIVE_QUESTION, "--json")
    after = VLLMServer(Settings(home=home, vllm_port=port)).status()
    assert "started the local model server" not in second.stderr  # reused, not started again
    assert after.running and after.pid == before.pid
    assert after.idle_s < before.idle_s and after.stops_in_s > before.stops_in_s  # the clock restarted


@pytest.mark.llm
def test_negative_keep_alive_keeps_the_server(keepalive_home) -> None:
    home, port = keepalive_home
    env = _cli_env(home, port, keep_alive_s=-1)
    first = _cli(env, "ask", KEEP_ALIVE_QUESTION, "--json")
    assert "it keeps running" in first.stderr
    time.sleep(25)
    status = _status(env)
    assert status["running"] and status["stops"] == "never" and status["stops_in_s"] is None
    assert _cli(env, "server", "stop").stdout.strip() == "stopped"
    assert not _status(env)["running"]


def test_kv_cache_sized_for_the_model_not_a_default(tmp_path: Path) -> None:
    """The 1.5B's dims (28 layers, 2 KV heads of 128): 4 sequences of 4,096 tokens in float32 are 0.94 GB,
    half that in bfloat16; a model without a readable config keeps the old 2 GiB."""
    from assistant.llm.sizing import kv_bytes_per_token, kv_cache_bytes

    model = tmp_path / "qwen-1.5b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 28, "num_attention_heads": 12,
                                                   "num_key_value_heads": 2, "hidden_size": 1536}))
    assert kv_bytes_per_token(model, "float32") == 2 * 28 * 2 * 128 * 4
    fp32 = kv_cache_bytes(model, "float32", 4096, 4)
    assert 0.93e9 < fp32 < 1.0e9 and fp32 % (64 * 2**20) == 0
    assert kv_cache_bytes(model, "bfloat16", 4096, 4) == fp32 // 2
    assert kv_cache_bytes(tmp_path / "nowhere", "float32", 4096, 4) == 2 * 2**30
    server = VLLMServer(_settings(tmp_path, llm_model_path=model, vllm_dtype="float32", vllm_max_model_len=4096))
    cmd = server.command()
    assert cmd[cmd.index("--kv-cache-memory-bytes") + 1] == str(fp32)
