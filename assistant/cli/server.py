"""`paper-assistant server start|stop|status`: the managed local vLLM server."""
from __future__ import annotations

import json

import typer

from assistant.cli.common import console, data, out, settings_of

server_app = typer.Typer(no_args_is_help=True, help="Manage the local vLLM server.")


@server_app.command("start")
def server_start(ctx: typer.Context) -> None:
    """Start (or keep) the local vLLM server: it runs until `server stop`, keep-alive never stops it."""
    from assistant.llm.lifetime import gigabytes
    from assistant.llm.protocol import LLMError
    from assistant.llm.server import VLLMServer

    server = VLLMServer(settings_of(ctx))
    try:
        with console.status("starting vLLM...") as status:
            url = server.ensure_running(progress=lambda message: status.update(data(message)), keep=True)
    except LLMError as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    state = server.status()
    memory = f", ~{gigabytes(state.pss_bytes)} of memory" if state.pss_bytes else ""
    out.print(f"vLLM ready at {url} ({server.model}{memory}); it runs until `paper-assistant server stop`",
              highlight=False, markup=False)


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the managed vLLM server now."""
    from assistant.llm.server import VLLMServer

    out.print("stopped" if VLLMServer(settings_of(ctx)).stop() else "not running")


@server_app.command("status")
def server_status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether the server runs, its model, its memory (all its processes) and when keep-alive stops it."""
    from assistant.llm.lifetime import duration, gigabytes
    from assistant.llm.server import VLLMServer

    settings = settings_of(ctx)
    if settings.llm_base_url:  # someone else's endpoint: not ours to start, measure or stop
        if as_json:
            out.print_json(json.dumps({"running": None, "url": settings.llm_base_url, "model": settings.llm_model,
                                       "managed": False, "stops": "external"}))
        else:
            out.print(f"llm_base_url is {settings.llm_base_url}: that server is managed by you", highlight=False, markup=False)
        return
    state = VLLMServer(settings).status()
    if as_json:
        out.print_json(json.dumps(state.to_json()))
        return
    if not state.running:
        out.print(f"not running ({state.model} on {state.url} when started)", highlight=False, markup=False)
        return
    out.print(f"running: {state.model} at {state.url}" + (f" (pid {state.pid})" if state.pid else ""), highlight=False, markup=False)
    if state.processes:
        out.print(f"memory: {gigabytes(state.pss_bytes)} (PSS; RSS summed over its {state.processes} processes: "
                  f"{gigabytes(state.rss_bytes)})", highlight=False, markup=False)
    if state.speed:
        out.print(f"speed: {state.speed}", highlight=False, markup=False)
    if state.stops_in_s is not None:
        out.print(f"stops in {duration(state.stops_in_s)} unless a request comes ({state.note})", highlight=False, markup=False)
    else:
        out.print(state.note, highlight=False, markup=False)
