"""The managed local vLLM server: start it once, reuse it across runs, stop it on request.

The server runs detached (its own process session) so that consecutive CLI commands share
it; `home/vllm.pid` records it and `home/logs/vllm.log` holds its output.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import httpx

from assistant.core.config import Settings
from assistant.core.locks import exclusive_lock
from assistant.llm.protocol import LLMError

Progress = Callable[[str], None]
HOST = "127.0.0.1"


class VLLMServer:
    """One vLLM OpenAI-compatible server on 127.0.0.1:settings.vllm_port serving settings.llm_model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.vllm_port
        self.model = settings.llm_model
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self.log_path = settings.home / "logs" / "vllm.log"
        self.pid_path = settings.home / "vllm.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    # --- probes
    def is_healthy(self) -> bool:
        try:
            return httpx.get(f"http://{HOST}:{self.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def served_models(self) -> list[str]:
        """Names served on the port; [] when nothing answers."""
        try:
            reply = httpx.get(f"{self.base_url}/models", timeout=5.0)
            reply.raise_for_status()
            return [m["id"] for m in reply.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return []

    def pid(self) -> int | None:
        """Pid from the pidfile if that process is still alive; a stale pidfile is removed."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if _alive(pid) and "vllm" in _cmdline(pid):
            return pid
        self.pid_path.unlink(missing_ok=True)  # stale: the process is gone (or the pid was reused)
        return None

    # --- lifecycle
    def ensure_running(self, progress: Progress | None = None) -> str:
        """Return the base URL of a healthy server for this model, starting one if needed."""
        say = progress or (lambda _msg: None)
        if self.is_healthy():
            return self._check_reusable()
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.pid_path.with_suffix(".lock")):  # one starter per home; others wait, then reuse
            if self.is_healthy():
                return self._check_reusable()
            self._start_or_join(say)
        return self._check_reusable()

    def _start_or_join(self, say: Progress) -> None:
        pid = self.pid()
        if pid is None:
            if _port_open(self.port):
                raise LLMError(f"port {self.port} is taken by something that is not a healthy vLLM server: "
                               "free it or set vllm_port to another port")
            self._start(say)
        else:
            say(f"vLLM (pid {pid}) is already starting; waiting for it")
        self._wait_ready(say)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the server this home started (the whole process group). True if one was running."""
        pid = self.pid()
        if pid is None:
            self._reap()
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self._reap()
        self.pid_path.unlink(missing_ok=True)
        return True

    # --- internals
    def command(self) -> list[str]:
        s = self.settings
        cmd = [str(s.vllm_python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(self._model_ref()), "--served-model-name", s.llm_model,
               "--host", HOST, "--port", str(self.port), "--dtype", self.dtype(),
               "--max-model-len", str(s.vllm_max_model_len), "--enable-prefix-caching"]
        if s.vllm_enforce_eager:
            cmd.append("--enforce-eager")
        return cmd

    def dtype(self) -> str:
        """bfloat16 where the hardware computes in it; float32 on CPUs that would emulate it (AVX2 only)."""
        if self.settings.vllm_dtype != "auto":
            return self.settings.vllm_dtype
        return "bfloat16" if _fast_bf16() else "float32"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "VLLM_CPU_KVCACHE_SPACE": str(self.settings.vllm_kv_cache_gib),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        })
        if self._is_local_model():
            env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        return env

    def _is_local_model(self) -> bool:
        return Path(self.settings.llm_model_path).exists()

    def _model_ref(self) -> str:
        path = Path(self.settings.llm_model_path)
        if path.exists():
            if not (path / "config.json").is_file():
                raise LLMError(f"model folder {path} has no config.json: {_model_hint(path)}")
            return str(path.resolve())
        text = str(self.settings.llm_model_path)
        if not path.is_absolute() and text.count("/") == 1 and not text.startswith("."):
            return text  # a Hugging Face name; vLLM downloads it when online
        raise LLMError(f"model folder {path} not found: {_model_hint(path)}")

    def _start(self, say: Progress) -> None:
        python = Path(self.settings.vllm_python)
        if not python.exists():
            raise LLMError(f"the vLLM virtualenv is missing ({python} not found): run `make setup` "
                           "(or `make setup-vllm`), or set llm_base_url to an OpenAI-compatible server")
        cmd = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        say(f"starting vLLM for {self.model} on port {self.port} (log: {self.log_path})")
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.environment(), start_new_session=True)
        self.pid_path.write_text(f"{self._proc.pid} {self.port} {self.model}\n")

    def _wait_ready(self, say: Progress) -> None:
        start = time.monotonic()
        last_note = start
        while True:
            if self.is_healthy():
                say(f"vLLM ready after {time.monotonic() - start:.0f} s")
                return
            pid = self.pid()
            if pid is None or (self._proc is not None and self._proc.poll() is not None):
                self._reap()
                self.pid_path.unlink(missing_ok=True)
                raise LLMError(f"vLLM exited while starting; last lines of {self.log_path}:\n{self.log_tail()}")
            elapsed = time.monotonic() - start
            if elapsed > self.settings.vllm_start_timeout_s:
                self.stop()
                raise LLMError(f"vLLM was not ready after {elapsed:.0f} s (vllm_start_timeout_s); "
                               f"last lines of {self.log_path}:\n{self.log_tail()}")
            if time.monotonic() - last_note >= 5.0:
                last_note = time.monotonic()
                say(f"waiting for vLLM ({elapsed:.0f} s): {_last_line(self.log_tail(1))}")
            time.sleep(0.5)

    def _check_reusable(self) -> str:
        served = self.served_models()
        if self.model not in served:
            raise LLMError(f"the server on port {self.port} serves {served or 'nothing'}, not {self.model}: "
                           "stop it or set vllm_port to another port")
        return self.base_url

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None


def _fast_bf16() -> bool:
    """A CUDA GPU, or a CPU with native bfloat16 matrix instructions (AVX-512 BF16 or AMX)."""
    if shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0:
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _model_hint(path: Path) -> str:
    target = "setup-model-small" if "0.5b" in path.name.lower() else "setup-model-large"
    return f"run `make {target}` (scripts/assemble_model.py), or point llm_model_path at a model folder"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited child not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _last_line(text: str) -> str:
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line[-120:]


def make_llm(settings: Settings, progress: Progress | None = None):
    """The configured LLM: `llm_base_url` if set, else the managed local vLLM server (started if needed)."""
    from assistant.llm.client import OpenAICompatibleLLM

    if settings.llm_base_url:
        return OpenAICompatibleLLM.from_settings(settings)
    url = VLLMServer(settings).ensure_running(progress)
    return OpenAICompatibleLLM.from_settings(settings, base_url=url)
