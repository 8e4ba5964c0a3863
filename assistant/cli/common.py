"""What every CLI command shares: the two consoles, the global options -> Settings -> Assistant."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)  # progress, warnings, errors
out = Console()                 # results (what --json prints)


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
        console.print(f"[bold yellow]warning:[/bold yellow] [yellow]{escape(message)}[/yellow]", highlight=False,
                      soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]{message}[/red]", highlight=False)
    raise typer.Exit(code)
