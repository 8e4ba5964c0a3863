"""Progress for long work: rich bars on a terminal; elsewhere (a log, CI) one plain line every few seconds."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from foundation.types import ProgressEvent

LINE_INTERVAL = 5.0  # seconds between plain progress lines: a log shows life without flooding


def progress_bar(console: Console, *extra: ProgressColumn, disable: bool = False, transient: bool = False,
                 interval: float = LINE_INTERVAL) -> Progress:
    """The one progress layout of the CLI: on a terminal a rich bar (description, bar, n/total, elapsed, ETA,
    then `extra` columns); elsewhere plain lines (`LineProgress`)."""
    if console.is_terminal or disable:
        # Descriptions name papers and files: never markup (a "[/red]" in one would end the program).
        return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), *extra, console=console, disable=disable, transient=transient)
    return LineProgress(console, interval=interval)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class LineProgress(Progress):
    """A rich Progress that draws nothing live: every `interval` seconds it prints one line per task that
    moved (done/total, rate, ETA), and a last line per unfinished task when it stops."""

    def __init__(self, console: Console, interval: float = LINE_INTERVAL):
        super().__init__(console=console, disable=True)
        self.interval = interval
        self._last = time.monotonic()
        self._moved: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._moved.add(task_id)
        self._tick()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._moved.add(task_id)
        self._tick()

    def stop(self) -> None:
        self._tick(force=True)
        super().stop()

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        for task in self.tasks:
            if task.id in self._moved:
                self.console.print(self.line(task.id), highlight=False, soft_wrap=True, markup=False)
        self._moved.clear()

    def line(self, task_id: TaskID) -> str:
        task = self._tasks[task_id]
        text = f"{task.description}: {int(task.completed)}"
        if task.total:
            text += f"/{int(task.total)} ({100 * task.completed / task.total:.0f}%)"
        if task.speed:
            text += f", {task.speed:.1f}/s"
        if task.total and not task.finished:
            text += f", ETA {duration(task.time_remaining)}"
        return text


class IngestProgress:
    """A callable progress sink for ingest. On a terminal: one bar for papers, one for the current paper's
    embedding, one per index build. Elsewhere: every few seconds one line with papers done, chunks
    embedded per second and the ETA, or the index build's progress."""

    def __init__(self, console: Console, enabled: bool = True, interval: float = LINE_INTERVAL):
        self.console = console
        self.lines = enabled and not console.is_terminal
        self.progress = progress_bar(console, disable=not enabled or self.lines)
        self.interval = interval
        self.tasks: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.elapsed = 0.0
        self.papers = (0, 0)
        self.chunks = 0
        self._per_paper: dict[str, int] = {}
        self._build: ProgressEvent | None = None
        self._build_started = 0.0
        self._last_line = time.perf_counter()

    def __enter__(self) -> "IngestProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.perf_counter() - self.started
        if self.lines:
            self._print(force=True)
        self.progress.__exit__(*exc)

    def _bar(self, key: str, description: str, done: int, total: int | None) -> None:
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[key], completed=done, total=total, description=description)

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage in ("fetch", "index"):
            self.papers = (event.done, event.total or 0)
            self._bar("papers", f"papers {event.item}".strip(), event.done, event.total)
        elif event.stage == "embed":
            self.chunks += event.done - self._per_paper.get(event.item, 0)
            self._per_paper[event.item] = event.done
            self._bar("embed", f"embedding {event.item}", event.done, event.total)
        elif event.stage == "build" and event.total:
            if self._build is None or self._build.message != event.message:
                self._build_started = time.perf_counter()
            self._build = event
            self._bar(event.message, event.message, event.done, event.total)
        elif event.message:
            if self.lines:
                self.console.print(event.message, highlight=False, soft_wrap=True, markup=False)
            else:
                self.progress.console.log(event.message, markup=False, highlight=False)
        if self.lines:
            self._print()

    def line(self) -> str:
        """The plain progress line: papers, chunks/s and ETA; during an index build, that build's progress."""
        now = time.perf_counter()
        build = self._build
        if build is not None and build.total and build.done < build.total:
            spent = now - self._build_started
            eta = spent / build.done * (build.total - build.done) if build.done else None
            return f"{build.message}: {build.done}/{build.total}, ETA {duration(eta)}"
        done, total = self.papers
        spent = now - self.started
        text = f"ingest: {done}/{total} papers, {self.chunks} chunks, {self.chunks / max(spent, 1e-9):.1f} chunks/s"
        if total and done < total:
            text += f", ETA {duration(spent / done * (total - done)) if done else '?'}"
        return text + f", {duration(spent)} elapsed"

    def _print(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(self.line(), highlight=False, soft_wrap=True, markup=False)
