"""The managed vLLM server: reuse, clear errors, stale pidfiles, start failures."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.core.config import Settings
from assistant.llm.protocol import LLMError
from assistant.llm.server import VLLMServer
from tests.conftest import free_port


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
    env = server.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3" and env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
