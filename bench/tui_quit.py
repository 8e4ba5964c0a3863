"""How long `paper-assistant tui` takes to quit on ctrl+q, as a user sees it: the real CLI in a
pseudo-terminal on a one-paper index, timed from the key press to the process's exit.

    python bench/tui_quit.py [--home DIR] [--llm-url http://127.0.0.1:8800/v1 --llm-model NAME] [--runs 3]

Scenarios: `loading` (ctrl+q while the engine still loads: the embedding model's warm-up runs in a
thread), `idle` (after the status line says ready), and with --llm-url `answered` (after an answer).
The baseline, in the same process, is the same CLI running `papers` (start-up plus interpreter exit
of the same imports without the TUI): quitting should cost about nothing beyond it.
"""
from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAPER = "1907.11692"  # RoBERTa: the smallest PDF of the corpus
CTRL_Q = b"\x11"


class Terminal:
    """One command in a pseudo-terminal; collects everything it draws."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a 120x40 terminal, then the command
            os.environ.clear()
            os.environ.update(env)
            os.execv(argv[0], argv)
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.seen = b""
        self.status: int | None = None

    def read(self, timeout: float) -> bool:
        """Read what is there within timeout; False once the child has exited."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            self.seen += chunk
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = status
            return False
        return True

    def wait_for(self, text: bytes, timeout: float) -> float:
        start = time.perf_counter()
        while text not in self.seen:
            if not self.read(0.05):
                raise RuntimeError(f"exited before showing {text!r}: {self.seen[-400:]!r}")
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"no {text!r} after {timeout:.0f} s")
        return time.perf_counter() - start

    def quit_time(self, timeout: float = 120.0) -> float:
        """Seconds from ctrl+q to the process's exit."""
        os.write(self.fd, CTRL_Q)
        start = time.perf_counter()
        while self.read(0.02):
            if time.perf_counter() - start > timeout:
                os.kill(self.pid, signal.SIGKILL)
                raise TimeoutError("the TUI did not quit")
        return time.perf_counter() - start

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())


def build_index(home: Path) -> None:
    from assistant.api import Assistant
    from foundation.config import Settings
    from tests.conftest import make_mirror

    if (home / "index").exists():
        return
    mirror = make_mirror(home.parent / "mirror", [PAPER])
    a = Assistant(Settings(home=home, mirror=mirror, offline=True, arxiv_delay_s=0.0))
    assert a.ingest([PAPER])[0].status.value == "ok"
    a.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="Index folder (default: a temporary one, deleted)")
    parser.add_argument("--llm-url", help="OpenAI-compatible server for the `answered` scenario")
    parser.add_argument("--llm-model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    tmp = None if args.home else Path(tempfile.mkdtemp(prefix="bench-quit-"))
    home = args.home or tmp / "home"
    build_index(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", "PAPER_ASSISTANT_HOME": str(home)})
    if args.llm_url:
        env.update({"PAPER_ASSISTANT_LLM_BASE_URL": args.llm_url, "PAPER_ASSISTANT_LLM_MODEL": args.llm_model})
    cli = [sys.executable, "-m", "assistant", "--offline"]

    results: dict[str, list[float]] = {"baseline: `papers` start to exit": [], "loading": [], "idle": []}
    if args.llm_url:
        results["answered"] = []
    def record(name: str, seconds: float) -> None:
        results[name].append(seconds)
        print(f"  {name}: {seconds:.2f} s", flush=True)

    # Once unrecorded: a first run may build ColBERT's C++ kernels (minutes), which is not start-up.
    subprocess.run(cli + ["papers"], env=env, capture_output=True, check=True, cwd=ROOT)
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(cli + ["papers"], env=env, capture_output=True, check=True, cwd=ROOT)
        record("baseline: `papers` start to exit", time.perf_counter() - start)

        term = Terminal(cli + ["tui"], env)
        term.wait_for(b"Ask", 60)  # the first paint: the question box
        time.sleep(0.3)
        record("loading", term.quit_time())

        term = Terminal(cli + ["tui"], env)
        term.wait_for(b"ready", 600)
        time.sleep(1.0)
        record("idle", term.quit_time())

        if args.llm_url:
            term = Terminal(cli + ["tui"], env)
            term.wait_for(b"ready", 600)
            term.seen = b""
            term.type("What does RoBERTa change in BERT's pretraining?\r")
            term.wait_for(b"done", 300)
            time.sleep(1.0)
            record("answered", term.quit_time())

    print(f"ctrl+q to process exit, {args.runs} run(s) each (s):")
    for name, times in results.items():
        print(f"  {name:<36} median {statistics.median(times):6.2f}   all {', '.join(f'{t:.2f}' for t in times)}")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
