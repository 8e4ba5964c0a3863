"""`paper-assistant doctor [--repair] [--json]`: the library's consistency, rendered; the checks and repairs
live in indexes/health.py."""
from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from assistant.cli.common import console, fail, make_assistant, out


def doctor(ctx: typer.Context,
           repair: bool = typer.Option(False, "--repair", help="Finish or roll back what a killed or failed run left"),
           as_json: bool = typer.Option(False, "--json", help="Print the report as JSON")) -> None:
    """Check that SQLite, chromadb, BM25 and ColBERT agree: per-paper passage counts, orphans, missing
    passages, half-ingested papers, leftover build folders. Exits 1 while anything is inconsistent."""
    from foundation.locks import LockHeld
    from indexes.health import check, repair as run_repair

    a = make_assistant(ctx)
    library = a.library
    if repair:
        try:
            with library.writing(blocking=False):
                result = run_repair(library)
        except LockHeld as exc:
            fail(f"another process (pid {exc.pid or '?'}) is writing to the library; run doctor again when it ends")
        report = result.after
        if as_json:
            out.print_json(result.model_dump_json())
        else:
            for action in result.actions or ["nothing to repair"]:
                out.print(f"repaired: {action}", highlight=False)
            _render(report)
    else:
        report = check(library)
        if as_json:
            out.print_json(report.model_dump_json())
        else:
            _render(report)
    a.close()
    if not report.consistent:
        raise typer.Exit(1)


def _render(report) -> None:
    names = list(report.indexes)
    table = Table(title=f"{len(report.papers)} papers, {report.searchable} searchable passages")
    for col in ("arXiv id", "status", "store", *names, "other"):
        table.add_column(col, justify="left" if col in ("arXiv id", "status") else "right")
    for p in report.papers:
        version = f"v{p.version}" if p.version else ""
        table.add_row(p.arxiv_id + version, p.status.value, str(p.store),
                      *(str(p.indexes.get(n, 0)) for n in names), str(p.other or ""))
    out.print(table)
    out.print("ids held: " + ", ".join(f"{n} {c}" for n, c in report.indexes.items()))
    if report.writer:
        out.print(f"[yellow]an ingest (pid {report.writer}) is writing now: differences are expected until it ends[/yellow]")
    for issue in report.issues:
        console.print(f"[red]problem:[/red] {escape(issue.message)}", highlight=False, soft_wrap=True)
    if report.consistent:
        out.print("[green]consistent[/green]: every ok paper's passages are in every index, and nothing else is")
    else:
        console.print(f"[red]{len(report.issues)} problem(s)[/red]: `paper-assistant doctor --repair` finishes or rolls back")
