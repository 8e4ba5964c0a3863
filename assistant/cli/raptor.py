"""CLI for the summary tree and writers' drafts: `paper-assistant raptor build|status` and `summarize`.

A build is its own process: it can run in the background (`--detach`, or `&`) while ingest and ask go
on; SQLite WAL lets them read and write meanwhile, and a lock file keeps a second builder out.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
from assistant.cli.common import console, data, make_assistant, out
from assistant.cli.progress import progress_bar
from rich.table import Table

raptor_app = typer.Typer(no_args_is_help=True, help="RAPTOR summary trees: build (resumable, background-friendly) and status.")


@raptor_app.command("build")
def build(ctx: typer.Context,
          papers: list[str] = typer.Option([], "--papers", "-p", help="Only these arXiv ids (default: every ingested paper)"),
          concurrency: Optional[int] = typer.Option(None, help="Summaries in flight at once [raptor_concurrency]"),
          summary_tokens: Optional[int] = typer.Option(None, help="Cap on tokens per summary [raptor_summary_tokens]"),
          context_tokens: Optional[int] = typer.Option(None, help="LLM context length (default: asked from the server)"),
          topics: bool = typer.Option(True, "--topics/--no-topics", help="Also (re)build the corpus topic level"),
          reducer: Optional[str] = typer.Option(None, help="auto | umap | pca: dimension reduction before clustering"),
          detach: bool = typer.Option(False, "--detach", help="Run in the background; log to <home>/raptor-build.log"),
          nice: int = typer.Option(10, help="CPU niceness of the build, so ingest and ask stay responsive"),
          as_json: bool = typer.Option(False, "--json", help="Print the build report as JSON")) -> None:
    """Build missing or outdated summary trees. Killed? Run it again: it resumes at the next summary."""
    from indexes.raptor import BuildRunning

    a = make_assistant(ctx)
    if detach:
        log = a.settings.home / "raptor-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        args = [arg for arg in sys.argv[1:] if arg != "--detach"]
        with open(log, "ab") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "assistant", *args, "--json"], stdout=fh, stderr=fh,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        out.print(f"tree build running in the background (pid {proc.pid}); log: {log}; "
                  "see progress with `paper-assistant raptor status`", markup=False, highlight=False)
        return
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    config = {"concurrency": concurrency, "summary_tokens": summary_tokens, "context_tokens": context_tokens,
              "topics": topics, "reducer": reducer}
    try:
        with progress_bar(console, disable=as_json) as bar:
            task = bar.add_task("building trees", total=None)

            def progress(event) -> None:
                if event.stage == "build":
                    bar.update(task, completed=event.done, total=event.total,
                               description=f"{event.item or 'trees'}: {event.message}"[:60])
                elif event.message:
                    bar.update(task, description=event.message[:60])

            report = a.build_tree(papers or None, progress=progress, **config)
    except BuildRunning as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(3)
    finally:
        a.close()
    if as_json:
        out.print_json(json.dumps({**report.model_dump(), "rate_per_min": round(report.rate_per_min, 2)}))
        return
    out.print(f"built {len(report.papers_built)} paper trees, {len(report.papers_skipped)} already current; "
              f"{report.summaries} summaries in {report.seconds:.0f} s ({report.rate_per_min:.1f}/min), "
              f"{report.reused} reused from a previous run, {report.retries} retries, {report.fallbacks} extractive "
              f"fallbacks, {report.splits} oversized inputs split; topics: {report.topics_written} written, "
              f"{report.topics_removed} removed")
    for aid, reason in report.papers_failed.items():
        out.print(f"[red]{data(aid)}[/red]: {data(reason)}", highlight=False)
    if report.papers_failed:
        raise typer.Exit(1)


@raptor_app.command("status")
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Which papers have trees, nodes per level, stale topics, and the last build's rate."""
    from indexes.raptor import TOPIC_LEVEL, build_running

    a = make_assistant(ctx)
    try:
        st = a.tree_status()
        running = build_running(a.settings.index_dir)
    finally:
        a.close()
    if as_json:
        out.print_json(json.dumps({**st.model_dump(), "build_running_pid": running}))
        return
    out.print(f"{len(st.with_tree)} of {st.papers} papers have a tree"
              + (f"; without: {', '.join(st.without_tree[:12])}{' ...' if len(st.without_tree) > 12 else ''}" if st.without_tree else ""),
              markup=False)
    table = Table("level", "nodes")
    for level, n in sorted(st.nodes_per_level.items()):
        name = "passages" if level == 0 else ("topics" if level == TOPIC_LEVEL else f"summaries L{level}")
        table.add_row(f"{level} ({name})", str(n))
    out.print(table)
    out.print(f"topics: {st.topics_ok} current, {st.topics_stale} stale (rebuilt on the next build)")
    if st.last_run:
        r = st.last_run
        out.print(f"last build: {r.get('summaries', 0)} summaries in {r.get('seconds', 0):.0f} s "
                  f"({r.get('rate_per_min', 0)}/min), {len(r.get('papers_built', []))} papers")
    out.print(f"a build is running now (pid {running})" if running else "no build running")


def summarize_command(ctx: typer.Context,
                      paper: list[str] = typer.Option([], "--paper", "-p", help="arXiv ids to summarise (repeat)"),
                      topic: Optional[str] = typer.Option(None, help="A topic to write about instead of papers"),
                      length: str = typer.Option("medium", help="short | medium | long, or a number of words"),
                      style: str = typer.Option("summary", help="summary | related-work | abstract | notes, or free text"),
                      output: Path = typer.Option(Path("draft.md"), "--output", "-o", help="Markdown file to write"),
                      as_json: bool = typer.Option(False, "--json", help="Print the whole Draft as JSON")) -> None:
    """Write a cited Markdown draft (references + BibTeX) about papers or a topic."""
    from assistant.llm.protocol import LLMError

    a = make_assistant(ctx)
    try:
        with console.status("gathering material...") as st:
            draft = a.summarize(papers=paper or None, topic=topic, length=int(length) if length.isdigit() else length,
                                style=style, progress=lambda e: st.update(data(e.message)))
    except (ValueError, LLMError) as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    finally:
        a.close()
    output.write_text(draft.to_markdown())
    if as_json:
        out.print_json(draft.model_dump_json())
        return
    out.print(draft.to_markdown(), highlight=False, markup=False)
    console.print(f"wrote {output} ({len(draft.citations)} citations; from trees: {', '.join(draft.tree_papers) or '-'}; "
                  f"from passages: {', '.join(draft.leaf_papers) or '-'}"
                  + (f"; {len(draft.dropped)} unsupported sentences dropped" if draft.dropped else "") + ")", markup=False)
