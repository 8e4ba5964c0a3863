"""Running the app so that quitting is instant.

ctrl+q used to take 4-14 s (bench/tui_quit.py): `asyncio.run` waits for every thread of its default
executor (a warm-up still loading the embedding model, an answer, an ingest) and then the interpreter
tears down torch, chromadb and ColBERT. The app's state is already on disk when it quits (history and
settings are written as they change; the indexes commit as they go and an interrupted ingest resumes),
so the process ends at once instead: the event loop is not `asyncio.run`'s, and the CLI leaves with
`os._exit` after the screen is restored. A model server that the session started is stopped by its
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
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
