"""What every CLI command shares: the two consoles, the global options -> Settings -> Assistant."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.segment import Segment

from foundation.terminal import inert


class SafeConsole(Console):
    """A Console that never sends a control or escape character from data to the terminal: the text of
    every segment is made inert as it is written (rich writes its own colours from styles, not from the
    text, and marks its own cursor moves as control segments, which pass). Markup in data is the other
    half: whatever prints a title, section, path or error inside markup wraps it in `data()`."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(seg if seg.control else Segment(inert(seg.text), seg.style) for seg in buffer)


console = SafeConsole(stderr=True)  # progress, warnings, errors
out = SafeConsole()                 # results (what --json prints)


def data(value: object) -> str:
    """A value from papers, the model, a server or the user, ready to sit inside rich markup: `[/red]` or
    `[link=...]` in a title stays text, and control characters are shown, not obeyed."""
    return escape(inert(str(value)))


def global_options(ctx: typer.Context) -> tuple[Optional[Path], dict[str, Any]]:
    """(config file, overrides) given as global options (`paper-assistant --home ... CMD`)."""
    opts = ctx.find_root().obj or {}
    return opts.get("config"), {k: v for k, v in opts.get("overrides", {}).items() if v is not None}


def settings_of(ctx: typer.Context, **extra: Any):
    from foundation.config import load_settings

    config, overrides = global_options(ctx)
    return load_settings(config, **{**overrides, **extra})


def make_assistant(ctx: typer.Context, **overrides: Any):
    from assistant.api import Assistant

    return Assistant(settings_of(ctx, **overrides))


def warn(messages) -> None:
    """Index health warnings, loud: the user should not read an empty result as "nothing matches"."""
    for message in messages:
        console.print(f"[bold yellow]warning:[/bold yellow] [yellow]{data(message)}[/yellow]", highlight=False,
                      soft_wrap=True)


def damage_known(assistant) -> set[str]:
    from indexes.damage import damaged_indexes

    return set(damaged_indexes(assistant.library))


def damage_found(assistant, known: set[str]) -> dict[str, str]:
    """Index name -> warning, for indexes found damaged since `known` was taken (ColBERT reads its codes only
    when first searched)."""
    from indexes.damage import damaged_indexes

    library = assistant.library
    index_of = {"dense": library.dense, **library.extra_indexes}
    found = {name: index_of[name].message() for name in damaged_indexes(library) if name not in known}
    if library.store.tampered and "store" not in known:
        found["store"] = (f"{len(library.store.tampered)} passage rows of the store no longer match their checksums "
                          "(changed by hand, or damaged) and were left out; run `paper-assistant doctor --repair`")
    return found


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line (the message is data: it may hold paths, ids, a server's words), then exit `code`."""
    console.print(f"[red]{data(message)}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
