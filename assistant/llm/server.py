"""The managed local vLLM server: start it once, reuse it across runs, stop it when idle or on request.

The server runs detached (its own process session) so that consecutive CLI commands share
it; `home/vllm.pid` records it and `home/logs/vllm.log` holds its output. It holds 6-9 GiB, so it
does not outlive its use: a keep-alive supervisor stops it after `server_keep_alive_s` without a
request (assistant/llm/lifetime.py), and every request from any process restarts that clock.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator

import httpx

from foundation.config import Settings
from foundation.hardware import cpu_has_int8_dot, cpu_kind, fast_bf16, has_cuda_gpu, isa_cap
from foundation.locks import exclusive_lock
from assistant.llm import int8, procs
from assistant.llm.probe import Probe, ProbeRecord, key_of, probe_once
from assistant.llm.sizing import kv_cache_bytes
from assistant.llm.lifetime import Lifetime, Policy, ServerStatus, gigabytes
from assistant.llm.protocol import LLMError

Progress = Callable[[str], None]
HOST = "127.0.0.1"


class VLLMServer:
    """One vLLM OpenAI-compatible server on 127.0.0.1:settings.vllm_port serving settings.llm_model."""

    def __init__(self, settings: Settings, *, stop_with_process: bool = False) -> None:
        """stop_with_process: a server this object starts also stops when this process ends (the TUI:
        quitting it frees the memory), unless server_keep_alive_s is negative."""
        self.settings = settings
        self.port = settings.vllm_port
        self.model = settings.llm_model
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self.log_path = settings.home / "logs" / "vllm.log"
        self.pid_path = settings.home / "vllm.pid"
        self.lifetime = Lifetime(settings, self.pid_path, self.log_path)
        self.stop_with_process = stop_with_process
        self.started: Policy | None = None  # set once this object has started a server
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
        if procs.alive(pid) and "vllm" in procs.cmdline(pid):
            return pid
        self.pid_path.unlink(missing_ok=True)  # stale: the process is gone (or the pid was reused)
        return None

    # --- lifecycle
    def ensure_running(self, progress: Progress | None = None, announce: Progress | None = None, *,
                       keep: bool = False) -> str:
        """Return the base URL of a healthy server for this model, starting one if needed.

        A start is announced once through `announce` (default: one line on stderr: a 6-9 GiB process
        that outlives the command must not start silently). keep: the user's `server start`, so
        keep-alive never stops it (also when it already runs).
        """
        say = progress or (lambda _msg: None)
        started_before = self.started
        if not self.is_healthy():
            self.pid_path.parent.mkdir(parents=True, exist_ok=True)
            with exclusive_lock(self.lifetime.lock_path):  # one starter per home; others wait, then reuse
                if not self.is_healthy():
                    self._start_or_join(say, keep)
        url = self._check_reusable()
        pid = self.pid()
        if pid is not None and keep:
            self.lifetime.keep()
        elif pid is not None:
            self.lifetime.adopt(pid)
        if self.started is not started_before:
            if not keep:
                (announce or _to_stderr)(self.start_notice())
            self._probe_once(url, say, announce or _to_stderr)
        return url

    # --- the first start's measurement (assistant/llm/probe.py)
    def weights(self) -> str:
        """What the server computes with: 'int8 weights, bfloat16 activations', 'float32', ..."""
        return f"int8 weights, {self.dtype()} activations" if self.int8() else self.dtype()

    def probe(self) -> Probe | None:
        """This CPU's measurement for the model and weights the server runs with, if taken."""
        return ProbeRecord(self.settings.home / "server-probes.json").get(key_of(cpu_kind(), self.model, self.weights()))

    def _probe_once(self, url: str, say: Progress, announce: Progress) -> None:
        if has_cuda_gpu() or self.probe() is not None:
            return
        say("measuring this CPU's speed with this model (once, 5-10 s)")
        with exclusive_lock(self.lifetime.lock_path):  # a request like any other: keep-alive waits for it
            self.lifetime.touch()
            held = self.lifetime.hold_request()
        try:
            probe_once(ProbeRecord(self.settings.home / "server-probes.json"), url, cpu_kind(), self.model,
                       self.weights(), Path(self.settings.llm_model_path), announce)
        finally:
            self.lifetime.touch()
            held.close()

    def start_notice(self) -> str:
        """'started the local model server (0.5B, int8, ~6.1 GB of memory); it stops after 5 min without a
        request: ...' with the memory measured now (PSS: what stopping it gives back)."""
        size = re.search(r"(\d+(?:\.\d+)?)b\b", self.model.lower())
        pid = self.pid()
        _, pss = procs.memory(procs.family(pid)) if pid else (0, 0)
        what = ([f"{size.group(1)}B" if size else self.model] + (["int8"] if self.int8() else [])
                + ([f"~{gigabytes(pss)} of memory"] if pss else []))
        policy = self.started or self.lifetime.policy() or Policy(-1.0, False, 0)
        return f"started the local model server ({', '.join(what)}); {policy.describe()}"

    def _start_or_join(self, say: Progress, keep: bool) -> None:
        pid = self.pid()
        if pid is None:
            if _port_open(self.port):
                raise LLMError(f"port {self.port} is taken by something that is not a healthy vLLM server: "
                               "free it or set vllm_port to another port")
            self._start(say, keep)
        else:
            say(f"vLLM (pid {pid}) is already starting; waiting for it")
        self._wait_ready(say)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the server this home started (the whole process group). True if one was running."""
        pid = self.pid()
        self.lifetime.end()
        if pid is None:
            self._reap()
            return False
        procs.signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while procs.alive(pid) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.2)
        if procs.alive(pid):
            procs.signal_group(pid, signal.SIGKILL)
        self._reap()
        self.pid_path.unlink(missing_ok=True)
        return True

    def status(self) -> ServerStatus:
        """Whether it runs, its processes' memory, when keep-alive stops it, and this CPU's measured speed."""
        state = self.lifetime.status(self.pid(), self.is_healthy(), self.base_url)
        probe = self.probe()
        if probe is not None and state.managed:
            state = dataclasses.replace(state, speed=probe.describe() + (f"; {probe.advice}" if probe.advice else ""))
        return state

    # --- internals
    def command(self) -> list[str]:
        s = self.settings
        cmd = [str(s.vllm_python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(self._model_ref()), "--served-model-name", s.llm_model,
               "--host", HOST, "--port", str(self.port), "--dtype", self.dtype(),
               "--max-model-len", str(s.vllm_max_model_len), "--enable-prefix-caching",
               "--kv-cache-memory-bytes", str(self.kv_cache_bytes())]
        if s.vllm_enforce_eager:
            cmd.append("--enforce-eager")
        return cmd

    def dtype(self) -> str:
        """bfloat16 where the hardware computes in it; float32 on CPUs that would emulate it (AVX2 only)."""
        if self.settings.vllm_dtype != "auto":
            return self.settings.vllm_dtype
        return "bfloat16" if fast_bf16() else "float32"

    def kv_cache_bytes(self) -> int:
        """The KV cache the server reserves: as set, or room for vllm_kv_sequences full-length sequences."""
        s = self.settings
        if s.vllm_kv_cache_gib is not None:
            return int(s.vllm_kv_cache_gib * 2**30)
        return kv_cache_bytes(Path(s.llm_model_path), self.dtype(), s.vllm_max_model_len, s.vllm_kv_sequences)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # vLLM's CPU platform would let it override the size chosen here
        env.update({
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        })
        if self._is_local_model():
            env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        if isa_cap():  # an AVX-512 machine standing in for an AVX2 one: vLLM must load its AVX2 kernels too
            env["ATEN_CPU_CAPABILITY"] = env.get("ATEN_CPU_CAPABILITY") or isa_cap()
            env["MKL_ENABLE_INSTRUCTIONS"] = env.get("MKL_ENABLE_INSTRUCTIONS") or "AVX2"  # MKL reads no oneDNN cap
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ISA_CAP_SHIM), env.get("PYTHONPATH", "")) if p)
        return env

    def _is_local_model(self) -> bool:
        return Path(self.settings.llm_model_path).exists()

    def int8(self) -> bool:
        """Serve the local folder's int8 twin: on by setting, or auto on a GPU-less CPU with AVX-512 VNNI/AMX.
        Not on AVX2: there oneDNN's int8 GEMM prefills 1.40x float32's speed but decodes at 0.38x (it packs
        the weights again for every one-token step), so an answer takes longer (README, How vLLM runs here)."""
        choice = self.settings.vllm_int8
        if choice == "auto":
            return (cpu_has_int8_dot() and not has_cuda_gpu() and self._is_local_model()
                    and int8.can_quantise(Path(self.settings.llm_model_path)))
        return choice == "on"

    def _model_ref(self) -> str:
        path = Path(self.settings.llm_model_path)
        if path.exists():
            if not (path / "config.json").is_file():
                raise LLMError(f"model folder {path} has no config.json: {_model_hint(path)}")
            return str(int8.twin_path(path.resolve()) if self.int8() else path.resolve())
        text = str(self.settings.llm_model_path)
        if not path.is_absolute() and text.count("/") == 1 and not text.startswith("."):
            return text  # a Hugging Face name; vLLM downloads it when online
        raise LLMError(f"model folder {path} not found: {_model_hint(path)}")

    def _start(self, say: Progress, keep: bool) -> None:
        python = Path(self.settings.vllm_python)
        if not python.exists():
            raise LLMError(f"the vLLM virtualenv is missing ({python} not found): run `make setup` "
                           "(or `make setup-vllm`), or set llm_base_url to an OpenAI-compatible server")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.int8():
            self._make_int8_weights(say)
        cmd = self.command()
        say(f"starting vLLM for {self.model} on port {self.port} (log: {self.log_path})")
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.environment(), start_new_session=True)
        self.pid_path.write_text(f"{self._proc.pid} {self.port} {self.model}\n")
        self.started = Policy.for_start(self.settings, kept=keep, stop_with_process=self.stop_with_process)
        # Supervised from the first second: if this command dies while the server loads, it still stops.
        self.lifetime.begin(self._proc.pid, self.started)

    def _make_int8_weights(self, say: Progress) -> None:
        source = Path(self.settings.llm_model_path).resolve()
        if not int8.can_quantise(source):
            raise LLMError(f"vllm_int8 is on but {source} is not a local safetensors model folder (not quantised "
                           "already): int8 weights are made from one")
        try:
            int8.ensure_twin(source, announce=lambda: say(f"making int8 weights for {self.model} (once; ~30 s)"))
        except int8.Int8Error as exc:
            raise LLMError(f"{exc}; set vllm_int8 = \"off\" to serve the bf16 weights") from None

    def _wait_ready(self, say: Progress) -> None:
        start = time.monotonic()
        last_note = start
        while True:
            self.lifetime.touch()  # loading is not idleness
            if self.is_healthy():
                say(f"vLLM ready after {time.monotonic() - start:.0f} s")
                return
            pid = self.pid()
            if pid is None or (self._proc is not None and self._proc.poll() is not None):
                self._reap()
                self.pid_path.unlink(missing_ok=True)
                self.lifetime.end()
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


ISA_CAP_SHIM = Path(__file__).resolve().parent / "isa_cap"


def _model_hint(path: Path) -> str:
    target = "setup-model-small" if "0.5b" in path.name.lower() else "setup-model-large"
    return f"run `make {target}` (scripts/assemble_model.py), or point llm_model_path at a model folder"


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _last_line(text: str) -> str:
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line[-120:]


def expect_requests(settings: Settings) -> None:
    """A command that will soon ask the managed server: restart its keep-alive clock now, so that it does
    not stop while the command loads its embedder and searches (a restart costs ~45 s)."""
    if not settings.llm_base_url:
        server = VLLMServer(settings)
        if server.pid() is not None:
            server.lifetime.touch()


def make_llm(settings: Settings, progress: Progress | None = None, announce: Progress | None = None, *,
             stop_with_process: bool = False):
    """The configured LLM: `llm_base_url` if set (never started or stopped here), else the managed local
    vLLM server, started if needed; every request restarts its keep-alive clock, and a request after
    keep-alive stopped it starts it again."""
    from assistant.llm.client import OpenAICompatibleLLM

    if settings.llm_base_url:
        return OpenAICompatibleLLM.from_settings(settings)
    server = VLLMServer(settings, stop_with_process=stop_with_process)
    url = server.ensure_running(progress, announce)
    return OpenAICompatibleLLM.from_settings(settings, base_url=url,
                                             hooks=_RequestHooks(server, progress, announce))


class _RequestHooks:
    """Every request to the managed server restarts its keep-alive clock and, while it runs, holds a shared
    lock on `vllm.requests` (the supervisor's test for "a request is in flight": vLLM's own gauges stay
    at 0 through a long CPU prefill). A request after keep-alive stopped the server starts it again."""

    def __init__(self, server: VLLMServer, progress: Progress | None, announce: Progress | None) -> None:
        self.server, self.progress, self.announce = server, progress, announce
        self.ours = server.pid() is not None  # else a server on the port that this home did not start

    @contextmanager
    def request(self) -> Iterator[None]:
        if not self.ours:
            yield
            return
        lifetime = self.server.lifetime
        held = None
        for _ in range(2):
            with exclusive_lock(lifetime.lock_path):  # the supervisor decides under this lock
                lifetime.touch()
                if self.server.pid() is not None:
                    held = lifetime.hold_request()
                    break
            self.server.ensure_running(self.progress, self.announce)  # keep-alive stopped it: start it again
        try:
            yield
        finally:
            lifetime.touch()
            if held is not None:
                held.close()  # releases the shared lock
