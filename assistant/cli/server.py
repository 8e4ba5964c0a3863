"""`paper-assistant server start|stop|status`: the managed local vLLM server."""
from __future__ import annotations

import typer

from assistant.cli.common import console, out, settings_of

server_app = typer.Typer(no_args_is_help=True, help="Manage the local vLLM server.")


@server_app.command("start")
def server_start(ctx: typer.Context) -> None:
    """Start (or reuse) the local vLLM server and wait until it is healthy."""
    from assistant.llm.server import VLLMServer

    with console.status("starting vLLM...") as status:
        url = VLLMServer(settings_of(ctx)).ensure_running(progress=status.update)
    out.print(f"vLLM ready at {url}")


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the managed vLLM server."""
    from assistant.llm.server import VLLMServer

    VLLMServer(settings_of(ctx)).stop()
    out.print("stopped")


@server_app.command("status")
def server_status(ctx: typer.Context) -> None:
    from assistant.llm.server import VLLMServer

    s = VLLMServer(settings_of(ctx))
    out.print("healthy" if s.is_healthy() else "not running")


