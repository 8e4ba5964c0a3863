"""How long the managed server lives: the keep-alive policy recorded beside its pidfile, the detached
supervisor that applies it (assistant/llm/keepalive.py), the "last request" clock, and status.

Files under home: `vllm.keepalive.json` (the policy and who started the server), `vllm.last_request`
(its mtime is the last request from any process), `vllm.lock` (held while starting or stopping).
A server that the user started with `server start` is `kept`: keep-alive never stops it.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from foundation.config import Settings
from assistant.llm import procs

SUPERVISOR = Path(__file__).with_name("keepalive.py")


@dataclass(frozen=True)
class Policy:
    """What stops a server: keep_alive_s idle seconds (<= 0: no idle limit), the end of owner_pid when
    stop_with_owner, or nothing when kept (started by the user)."""

    keep_alive_s: float
    stop_with_owner: bool
    owner_pid: int
    kept: bool = False

    @classmethod
    def for_start(cls, settings: Settings, *, kept: bool = False, stop_with_process: bool = False) -> Policy:
        keep = settings.server_keep_alive_s
        # 0 means "when the starting command ends"; a session (the TUI) also ends it, unless keep < 0.
        with_owner = not kept and (keep == 0 or (stop_with_process and keep >= 0))
        return cls(keep_alive_s=keep, stop_with_owner=with_owner, owner_pid=os.getpid(), kept=kept)

    @property
    def supervised(self) -> bool:
        return not self.kept and (self.keep_alive_s > 0 or self.stop_with_owner)

    def describe(self) -> str:
        """How it stops, for the start notice and `server status`."""
        if self.kept:
            return "it runs until `paper-assistant server stop` (started with `server start`)"
        if not self.supervised:
            return "it keeps running (server_keep_alive_s < 0): `paper-assistant server stop` stops it"
        parts = []
        if self.stop_with_owner:
            what = "command" if self.keep_alive_s == 0 else "session"
            parts.append(f"when this {what} ends" if self.owner_pid == os.getpid() else
                         f"when the {what} that started it (pid {self.owner_pid}) ends")
        if self.keep_alive_s > 0:
            parts.append(f"after {duration(self.keep_alive_s)} without a request")
        return f"it stops {' or '.join(parts)}: `paper-assistant server stop` stops it now"


    def exit_note(self) -> str:
        """Said when the process that started the server ends."""
        if self.stop_with_owner:
            return "stopping the local model server this session started"
        if self.supervised:
            return (f"the local model server stays up until {duration(self.keep_alive_s)} after the last request: "
                    "`paper-assistant server stop` stops it now")
        return "the local model server keeps running: `paper-assistant server stop` stops it"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    url: str
    model: str
    pid: int | None = None
    managed: bool = True           # started by this app for this home (else: someone else's server)
    processes: int = 0
    rss_bytes: int = 0             # summed over the server's processes (shared pages counted per process)
    pss_bytes: int = 0             # what stopping it gives back
    keep_alive_s: float | None = None
    stops: str = "never"           # idle | with-owner | never | kept | external
    stops_in_s: float | None = None
    idle_s: float | None = None    # since the last request from any process
    note: str = ""
    speed: str = ""                # the first start's measurement on this CPU (assistant/llm/probe.py)

    def to_json(self) -> dict:
        return asdict(self)


class Lifetime:
    """The keep-alive files of one home's managed server."""

    def __init__(self, settings: Settings, pid_path: Path, log_path: Path) -> None:
        self.settings = settings
        home = pid_path.parent
        self.pid_path, self.log_path = pid_path, log_path
        self.state_path = home / "vllm.keepalive.json"
        self.touch_path = home / "vllm.last_request"
        self.lock_path = home / "vllm.lock"
        self.requests_path = home / "vllm.requests"

    # --- the clock
    def touch(self) -> None:
        try:
            self.touch_path.touch()
        except OSError:
            pass  # a read-only home loses keep-alive bookkeeping, not the request

    def hold_request(self) -> IO[str]:
        """A shared lock on `vllm.requests` for one request in flight; closing the file releases it (so
        does the kernel if the process dies)."""
        held = open(self.requests_path, "a")
        fcntl.flock(held, fcntl.LOCK_SH)
        return held

    def idle_s(self) -> float | None:
        try:
            return max(0.0, time.time() - self.touch_path.stat().st_mtime)
        except OSError:
            return None

    # --- the policy
    def read(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def policy(self) -> Policy | None:
        state = self.read()
        if state is None:
            return None
        try:
            return Policy(float(state["keep_alive_s"]), bool(state["stop_with_owner"]), int(state["owner_pid"]),
                          bool(state.get("kept")))
        except (KeyError, TypeError, ValueError):
            return None

    def _write(self, state: dict) -> None:
        tmp = self.state_path.with_name(f".{self.state_path.name}.tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    def begin(self, server_pid: int, policy: Policy) -> None:
        """Record a server just started (call with the start lock held) and start its supervisor."""
        self.touch()
        self._retire_supervisor()
        state = {**asdict(policy), "server_pid": server_pid, "port": self.settings.vllm_port,
                 "model": self.settings.llm_model, "started_at": time.time(), "supervisor": None,
                 "supervisor_pid": None}
        self._write(state)
        if policy.supervised:
            self._supervise(state)

    def keep(self) -> None:
        """`server start` on a running managed server: the user keeps it, keep-alive lets go."""
        state = self.read()
        if state is not None and not state.get("kept"):
            self._retire_supervisor()
            self._write({**state, "kept": True, "supervisor": None, "supervisor_pid": None})

    def adopt(self, server_pid: int) -> None:
        """A command reuses the running server: restart the clock; a supervisor that died is replaced
        (by the idle rule alone: the owner it watched may be gone)."""
        self.touch()
        state = self.read()
        if state is None or state.get("server_pid") != server_pid or state.get("kept"):
            return
        pid = state.get("supervisor_pid")
        if pid and procs.alive(pid) and "keepalive.py" in procs.cmdline(pid):
            return
        if float(state.get("keep_alive_s", -1)) > 0:
            self._supervise({**state, "stop_with_owner": False})

    def end(self) -> None:
        """The server is gone or being stopped: its supervisor and keep-alive files go too."""
        self._retire_supervisor()
        self.state_path.unlink(missing_ok=True)
        self.touch_path.unlink(missing_ok=True)
        self.requests_path.unlink(missing_ok=True)

    def _supervise(self, state: dict) -> None:
        token = secrets.token_hex(8)
        state = {**state, "supervisor": token}
        self._write(state)  # before the supervisor starts: it leaves at once if the token is not there
        cmd = [sys.executable, "-I", "-S", str(SUPERVISOR), str(self.state_path), str(self.pid_path),
               str(self.touch_path), str(self.lock_path), str(self.requests_path), str(self.log_path), token]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
        self._write({**state, "supervisor_pid": proc.pid})

    def _retire_supervisor(self) -> None:
        state = self.read() or {}
        pid = state.get("supervisor_pid")
        if pid and procs.alive(pid) and "keepalive.py" in procs.cmdline(pid):
            try:
                os.kill(pid, 15)  # SIGTERM: it leaves without touching the server
            except ProcessLookupError:
                pass

    # --- status
    def status(self, running_pid: int | None, healthy: bool, url: str) -> ServerStatus:
        model = self.settings.llm_model
        if running_pid is None:
            if healthy:
                return ServerStatus(True, url, model, managed=False, stops="external",
                                    note="a server this app did not start answers on this port: keep-alive never stops it")
            return ServerStatus(False, url, model, note="not running")
        family = procs.family(running_pid)
        rss, pss = procs.memory(family)
        base = dict(running=True, url=url, model=model, pid=running_pid, processes=len(family), rss_bytes=rss,
                    pss_bytes=pss, idle_s=self.idle_s())
        policy = self.policy()
        if policy is None:
            return ServerStatus(**base, stops="never", note="started without keep-alive: it runs until stopped")
        state = self.read() or {}
        if policy.kept:
            return ServerStatus(**base, keep_alive_s=policy.keep_alive_s, stops="kept", note=policy.describe())
        stops_in = None
        if policy.keep_alive_s > 0:
            stops_in = max(0.0, policy.keep_alive_s - (self.idle_s() or 0.0))
        stops = "idle" if policy.keep_alive_s > 0 else ("with-owner" if policy.stop_with_owner else "never")
        note = policy.describe()
        sup = state.get("supervisor_pid")
        if policy.supervised and not (sup and procs.alive(sup)):
            stops, stops_in, note = "never", None, "its keep-alive supervisor is not running: the next command restarts it"
        return ServerStatus(**base, keep_alive_s=policy.keep_alive_s, stops=stops, stops_in_s=stops_in, note=note)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def gigabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"
