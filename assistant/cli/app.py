"""Command line: paper-assistant ingest | papers | remove | search | ask | server ... (`python -m assistant` too)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from assistant.cli.common import console, damage_found, damage_known, data, fail, make_assistant, out, warn
from assistant.cli.doctor import doctor
from assistant.cli.eval import eval_app
from assistant.cli.progress import IngestProgress
from assistant.cli.raptor import raptor_app, summarize_command
from assistant.cli.server import server_app
from assistant.cli.render import print_answer, print_hits, print_ingest_summary, print_papers
from foundation.types import PaperStatus

app = typer.Typer(add_completion=False, no_args_is_help=True, help="A research assistant over arXiv papers, offline-first.")
app.add_typer(server_app, name="server")
app.add_typer(eval_app, name="eval")
app.add_typer(raptor_app, name="raptor")
app.command("summarize")(summarize_command)
app.command("doctor")(doctor)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, help="Where the app keeps its index, cache and history [env PAPER_ASSISTANT_HOME]"),
    mirror: Optional[Path] = typer.Option(None, help="Local folder of <id>.pdf + manifest.json [env PAPER_ASSISTANT_MIRROR]"),
    config: Optional[Path] = typer.Option(None, help="TOML config file [env PAPER_ASSISTANT_CONFIG]"),
    offline: Optional[bool] = typer.Option(None, "--offline/--online", help="Never use the network"),
    llm_url: Optional[str] = typer.Option(None, help="Use this OpenAI-compatible server instead of the managed vLLM"),
    llm_model: Optional[str] = typer.Option(None, help="Model name served at the LLM endpoint"),
) -> None:
    ctx.obj = {"config": config, "overrides": {"home": home, "mirror": mirror, "offline": offline,
                                               "llm_base_url": llm_url, "llm_model": llm_model}}


@app.command()
def ingest(ctx: typer.Context,
           items: Optional[list[str]] = typer.Argument(None, help="arXiv ids, URLs, text/markdown files with arXiv "
                                                       "links, PDFs, folders of PDFs, .bib files, Zotero data folders"),
           zotero: bool = typer.Option(False, "--zotero", help="Read a Zotero library: the folders given (Zotero's data "
                                       "directory, with zotero.sqlite and storage/), or settings.zotero_dir [~/Zotero]"),
           collection: Optional[str] = typer.Option(None, help="Only this Zotero collection (name or key) and its "
                                                    "subcollections [settings.zotero_collection]"),
           glob: Optional[str] = typer.Option(None, "--glob", help="Which files of a folder to read, in every "
                                              "subfolder [settings.pdf_glob: *.pdf]"),
           as_json: bool = typer.Option(False, "--json", help="Print results as JSON")) -> None:
    """Fetch (or read from disk), parse, chunk and index papers. Re-running resumes; what succeeded is not
    redone, and a library read again adds only its new items. Exits 1 when nothing requested succeeded (every
    paper failed, or no paper was named)."""
    a = make_assistant(ctx, pdf_glob=glob, zotero_collection=collection)
    items = list(items or [])
    if zotero:
        items = items or [str(a.settings.zotero_dir)]
        not_zotero = [i for i in items if not _is_zotero(Path(i).expanduser())]
        if not_zotero:
            fail(f"--zotero reads Zotero libraries; no zotero.sqlite in: {', '.join(not_zotero)}", 2)
    elif not items:
        fail("give arXiv ids, files or folders to ingest (or --zotero for your Zotero library)", 2)
    warn(a.library.open_warnings)
    with IngestProgress(console, enabled=not as_json) as progress:
        results = a.ingest(items, progress=progress)
    error = ingest_error(results)
    if as_json:
        papers = [r for r in results if r.kind == "paper"]
        out.print_json(json.dumps({
            "ok": len({r.arxiv_id for r in papers if r.status == PaperStatus.ok}),
            "failed": sum(r.status == PaperStatus.failed for r in papers),
            "error": error, "results": [r.model_dump(mode="json") for r in results]}))
    else:
        print_ingest_summary(out, results, progress.elapsed)
    a.close()
    if error:
        if not as_json:
            console.print(f"[red]{data(error)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _is_zotero(path: Path) -> bool:
    return (path / "zotero.sqlite").is_file() or (path.is_file() and path.name.startswith("zotero"))


def ingest_error(results) -> str | None:
    """Why an ingest achieved nothing, or None when at least one requested paper is (now) indexed."""
    papers = [r for r in results if r.kind == "paper"]
    if any(r.status == PaperStatus.ok for r in papers):
        return None
    if papers:
        return f"the paper failed: {papers[0].reason}" if len(papers) == 1 else f"all {len(papers)} papers failed"
    return "nothing to ingest: " + "; ".join(r.reason for r in results)


@app.command()
def papers(ctx: typer.Context, as_json: bool = typer.Option(False, "--json"),
           failed: bool = typer.Option(False, "--failed", help="Only the papers that failed, with their reasons")) -> None:
    """List indexed papers with their status (ok / failed with reason)."""
    a = make_assistant(ctx)
    warn(a.library.open_warnings)
    records = a.papers()
    if failed:
        records = [r for r in records if r.status == PaperStatus.failed]
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in records]))
    else:
        print_papers(out, records)


@app.command()
def remove(ctx: typer.Context, arxiv_id: Optional[str] = typer.Argument(None, help="The paper to remove: its id "
                                                                          "(arXiv id, or pdf-... from `papers`) or its PDF file"),
           failed: bool = typer.Option(False, "--failed", help="Forget every failed paper (see `papers --failed`)")) -> None:
    """Remove a paper and its passages from every index, or (--failed) every failed paper's row."""
    if bool(arxiv_id) == failed:
        fail("give an arXiv id or --failed (not both)", 2)
    a = make_assistant(ctx)
    if failed:
        gone = a.remove_failed()
        out.print(f"removed {len(gone)} failed papers", markup=False)
        return
    arxiv_id = a.paper_id_of(arxiv_id)
    if not a.remove(arxiv_id):
        console.print(f"[red]{data(arxiv_id)} is not in the library[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"removed {arxiv_id}", markup=False, highlight=False)


@app.command()
def search(ctx: typer.Context, query: str, k: Optional[int] = typer.Option(None, "-k", help="Number of passages [settings.search_k]"),
           mode: Optional[str] = typer.Option(None, help="dense | bm25 | colbert | hybrid"),
           paper: list[str] = typer.Option([], help="Restrict to these arXiv ids"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Ranked passages with paper, section and page."""
    from assistant.engine.retrieve import RetrievalError

    a = make_assistant(ctx, search_k=k)  # -k is checked as search_k is: a count of at least 1
    try:
        damaged = damage_found(a, set())
        down = a.retriever.unavailable(mode) if mode in a.library.extra_indexes else []
        if mode in damaged or down:  # one line, not a warning and then the same as an error
            raise RetrievalError(damaged.get(mode) or down[0])
        warn(a.retriever.warnings(mode or a.settings.retrieval_mode))
        known = damage_known(a)
        hits = a.search(query, k=a.settings.search_k, mode=mode, papers=paper or None)
        late = damage_found(a, known)  # an index whose files broke only when this search read them
        if (mode or a.settings.retrieval_mode) in late:
            raise RetrievalError(late[mode or a.settings.retrieval_mode])
        warn(late.values())
    except RetrievalError as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if as_json:
        out.print_json(json.dumps([h.model_dump(mode="json") for h in hits]))
    else:
        print_hits(out, hits)


@app.command()
def ask(ctx: typer.Context, question: str, mode: Optional[str] = typer.Option(None, help="Retrieval mode"),
        paper: list[str] = typer.Option([], help="Restrict to these arXiv ids"),
        as_json: bool = typer.Option(False, "--json", help="Print the whole Answer (passages, scores, timings) as JSON"),
        markdown: Optional[Path] = typer.Option(None, help="Also write the answer as Markdown with references and BibTeX"),
        agentic: Optional[bool] = typer.Option(None, "--agentic/--single-shot", help="Plan, re-retrieve and verify (settings.agentic)"),
        hyde: Optional[bool] = typer.Option(None, "--hyde/--no-hyde", help="Also search with a hypothetical answer passage (settings.hyde)")) -> None:
    """Answer a question from the indexed papers, with citations to paper, section and page."""
    from assistant.llm.protocol import LLMError

    a = make_assistant(ctx, agentic=agentic, hyde=hyde)
    known = damage_known(a)
    answer = None
    streaming = not as_json and sys.stdout.isatty()
    try:
        with console.status("searching...") as status:
            for event in a.ask_stream(question, papers=paper or None, mode=mode,
                                      progress=lambda e: status.update(data(e.message))):
                if event.kind in ("plan", "search", "status", "passages", "verify"):
                    status.update(data(event.text))
                elif event.kind == "token" and streaming:
                    status.stop()
                    out.print(event.text, end="", highlight=False, markup=False)
                elif event.kind == "error":
                    console.print(f"[yellow]{data(event.text)}[/yellow]", highlight=False)
                elif event.kind == "answer":
                    answer = event.answer
    except (LLMError, ValueError) as exc:
        if as_json:
            out.print_json(json.dumps({"question": question, "text": "", "error": str(exc)}))
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if streaming:
        out.print()
    if as_json:
        out.print_json(answer.model_dump_json())
    else:
        print_answer(out, answer, a.settings.weak_support)
    warn(damage_found(a, known).values())
    if markdown:
        markdown.write_text(answer.to_markdown())
    if answer.error and not answer.abstained and (not answer.text or answer.extractive):
        raise typer.Exit(1)  # the model failed (quotes shown in its place are no success), whatever was printed


@app.command()
def tui(ctx: typer.Context, question: Optional[str] = typer.Option(None, "--question", "-q", help="Ask this as soon as the library is loaded")) -> None:
    """The terminal UI (ctrl+q quits). Without a terminal (CI, pipes) it prints the cited answer to --question instead."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        if not question:
            console.print("[red]no terminal: give --question to print an answer instead[/red]")
            raise typer.Exit(2)
        import inspect

        defaults = {name: getattr(p.default, "default", p.default)
                    for name, p in inspect.signature(ask).parameters.items() if name not in ("ctx", "question")}
        return ask(ctx, question, **defaults)
    from assistant.tui import create_app
    from assistant.tui.lifecycle import leave, run

    leave(run(create_app(settings=make_assistant(ctx).settings, question=question)))


def main() -> None:
    from foundation.config import Settings  # noqa: F401  (fail fast on a broken install)

    try:
        app()
    except Exception as exc:  # one clear line instead of a traceback for expected failures
        from foundation.config import ConfigError
        from indexes.integrity import StoreDamaged
        from indexes.store import IndexMismatch

        if isinstance(exc, (IndexMismatch, ConfigError, StoreDamaged)):
            console.print(f"[red]{data(exc)}[/red]", soft_wrap=True, highlight=False)
            raise SystemExit(2)
        if isinstance(exc, PermissionError):  # a file under home made read-only after the library opened
            console.print(f"[red]cannot write to {data(exc.filename or '?')}: permission denied[/red]", soft_wrap=True,
                          highlight=False)
            raise SystemExit(2)
        raise
