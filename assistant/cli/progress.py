"""Progress for long work: rich bars on a terminal; elsewhere (a log, CI) one plain line every few seconds."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from assistant.core.types import ProgressEvent


def progress_bar(console: Console, *extra: ProgressColumn, disable: bool = False, transient: bool = False) -> Progress:
    """The one rich progress layout of the CLI: description, bar, n/total, elapsed, ETA, then `extra` columns."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), *extra, console=console, disable=disable, transient=transient)


class IngestProgress:
    """A callable progress sink: one bar for papers, one for the current paper's embedding, one per index."""

    def __init__(self, console: Console, enabled: bool = True):
        self.progress = progress_bar(console, disable=not enabled)
        self.tasks: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.elapsed = 0.0

    def __enter__(self) -> "IngestProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.perf_counter() - self.started
        self.progress.__exit__(*exc)

    def _bar(self, key: str, description: str, done: int, total: int | None) -> None:
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[key], completed=done, total=total, description=description)

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage in ("fetch", "index"):
            self._bar("papers", f"papers {event.item}".strip(), event.done, event.total)
        elif event.stage == "embed":
            self._bar("embed", f"embedding {event.item}", event.done, event.total)
        elif event.stage == "build" and event.total:
            self._bar(event.message, event.message, event.done, event.total)
        elif event.message:
            self.progress.console.log(event.message)
