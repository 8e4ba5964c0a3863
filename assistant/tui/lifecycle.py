"""Running the app so that quitting is instant.

ctrl+q used to take 4-14 s (bench/tui_quit.py): `asyncio.run` waits for every thread of its default
executor (a warm-up still loading the embedding model, an answer, an ingest) and then the interpreter
tears down torch, chromadb and ColBERT. The app's state is already on disk when it quits (history and
settings are written as they change; the indexes commit as they go and an interrupted ingest resumes),
so the process ends at once instead: the event loop is not `asyncio.run`'s, and the CLI leaves with
`os._exit` after the screen is restored. One thing would outlive the process wrongly: torch's
C++-extension build (ColBERT's kernels, on first load) locks with a file that only its holder
removes, and every later run would wait on it forever; `leave` removes the ones this process holds. A model server that the session started is stopped by its
keep-alive supervisor, which sees this process end (assistant/llm/keepalive.py).
"""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, NoReturn

from textual.app import App


def run(app: App, **kwargs: Any) -> int:
    """Run app until it exits and return its exit code, without waiting for its worker threads."""
    loop = asyncio.new_event_loop()
    app.run(loop=loop, **kwargs)
    return app.return_code or 0


def leave(code: int) -> NoReturn:
    """End the process now: threads still running and module teardown are skipped."""
    release_build_locks()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def release_build_locks() -> list[str]:
    """Remove torch extension-build lock files that this process holds open (torch's FileBaton keeps
    the descriptor until it releases); returns their paths."""
    roots = [os.environ.get("TORCH_EXTENSIONS_DIR") or "", os.sep + "torch_extensions" + os.sep]
    released = []
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return released
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if os.path.basename(target) == "lock" and any(root and root in target for root in roots):
            try:
                os.unlink(target)
                released.append(target)
            except OSError:
                pass
    return released
