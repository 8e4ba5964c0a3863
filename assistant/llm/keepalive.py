"""The keep-alive supervisor of the managed vLLM server: a small detached process that stops the server
once nobody has used it for `keep_alive_s`, or when the command that started it ends (if asked to).

    python -I -S keepalive.py STATE PIDFILE LAST_REQUEST LOCK REQUESTS LOG TOKEN

It is run by path with the standard library only (~10 MB, no app imports). It costs no CPU while it
waits: it sleeps in one select() on pidfds of the server and the owner, with the idle deadline as the
timeout. Clients touch LAST_REQUEST before and after every request (any process) and hold a shared
lock on REQUESTS while one runs; on waking the supervisor re-reads the mtime, tries REQUESTS
exclusively (and asks the server's /metrics, for clients that are not ours) whether a request is
still running, and only then stops the server, holding LOCK so that no request starts in between. STATE (JSON,
written by assistant/llm/lifetime.py) is re-read on every wake: when it no longer carries TOKEN
(`server stop`, a restart, or `server start` keeping the server), the supervisor leaves it alone.
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import sys
import time
import urllib.request
from pathlib import Path

STOP_GRACE_S = 30.0
RECHECK_S = 5.0  # when the owner ended while a request of another process still ran


class Files:
    def __init__(self, state: str, pidfile: str, last_request: str, lock: str, requests: str, log: str,
                 token: str):
        self.state, self.pidfile, self.last_request = Path(state), Path(pidfile), Path(last_request)
        self.lock, self.requests, self.log, self.token = Path(lock), Path(requests), Path(log), token

    def read_state(self) -> dict | None:
        try:
            state = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("supervisor") == self.token and not state.get("kept") else None

    def server_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def idle_s(self) -> float:
        try:
            return time.time() - self.last_request.stat().st_mtime
        except OSError:
            return float("inf")

    def touch(self) -> None:
        self.last_request.touch()

    def note(self, text: str) -> None:
        try:
            with open(self.log, "a") as fh:
                fh.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} keep-alive: {text}\n")
        except OSError:
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wait(pids: dict[str, int], timeout: float | None) -> str:
    """Block until one of pids exits ("server" / "owner") or timeout passes ("timeout")."""
    fds: dict[int, str] = {}
    try:
        for name, pid in pids.items():
            try:
                fds[os.pidfd_open(pid)] = name
            except ProcessLookupError:
                return name
            except (AttributeError, OSError):  # no pidfds (old kernel): wake now and then instead
                timeout = RECHECK_S if timeout is None else min(timeout, RECHECK_S)
                if not alive(pid):
                    return name
        ready, _, _ = select.select(list(fds), [], [], timeout)
        return fds[ready[0]] if ready else "timeout"
    finally:
        for fd in fds:
            os.close(fd)


def busy(files: Files, port: int) -> bool:
    """Whether a request is in flight: one of our clients holds REQUESTS, or the server's gauges say so."""
    try:
        with open(files.requests, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        pass
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode("utf-8", "replace")
    except OSError:
        return False
    total = 0.0
    for line in text.splitlines():
        if line.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting")):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                pass
    return total > 0


def stop(files: Files, pid: int, why: str) -> None:
    files.note(f"stopping the server (pid {pid}): {why}")
    try:
        group = os.getpgid(pid)
        os.killpg(group, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    if wait({"server": pid}, STOP_GRACE_S) == "timeout":
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for path in (files.pidfile, files.state, files.last_request, files.requests):
        path.unlink(missing_ok=True)


def run(files: Files) -> None:
    owner_gone = False
    while True:
        state = files.read_state()
        pid = files.server_pid()
        if state is None or pid != state.get("server_pid") or not alive(pid):
            return  # stopped, restarted or kept by someone else: not ours to stop any more
        keep = float(state["keep_alive_s"])
        watch = {"server": pid}
        if state.get("stop_with_owner") and state.get("owner_pid") and not owner_gone:
            watch["owner"] = int(state["owner_pid"])
        if keep < 0 and "owner" not in watch:
            return  # never stopped by time, and no owner to outlive
        if keep > 0:
            timeout = max(0.0, keep - files.idle_s())
        else:
            timeout = RECHECK_S if owner_gone else None
        event = wait(watch, timeout)
        if event == "server":
            return
        with open(files.lock, "a+") as lock:  # the clients' lock: no request starts while we decide
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = files.read_state()
            if state is None or files.server_pid() != pid:
                return
            if event == "owner":
                owner_gone = True
            idle = files.idle_s()
            if event == "timeout" and keep > 0 and idle < keep:
                continue  # a request came in while we slept: sleep until its deadline
            if busy(files, int(state["port"])):
                files.touch()  # a request in flight is use: the clock restarts
                continue
            why = ("the command that started it ended" if event == "owner" or keep <= 0
                   else f"no request for {idle:.0f} s (server_keep_alive_s = {keep:g})")
            stop(files, pid, why)
            return


def main() -> None:
    # `server stop` / `server start` end us with SIGTERM: leave the server alone and go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run(Files(*sys.argv[1:8]))


if __name__ == "__main__":
    main()
