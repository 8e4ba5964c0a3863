"""`paper-assistant doctor [--repair] [--json]`: the library's files and consistency, rendered; the checks and
repairs live in indexes/inspect.py (damaged files), indexes/rebuild.py (restoring them) and indexes/health.py
(consistency)."""
from __future__ import annotations

import typer
from rich.table import Table

from assistant.cli.common import console, data, fail, make_assistant, out, settings_of


def doctor(ctx: typer.Context,
           repair: bool = typer.Option(False, "--repair", help="Restore damaged files; finish or roll back what a killed or failed run left"),
           as_json: bool = typer.Option(False, "--json", help="Print the report as JSON")) -> None:
    """Check every file of the library (store, chromadb, BM25, ColBERT) and that they agree: per-paper passage
    counts, orphans, missing passages, half-ingested papers, leftover build folders, rows that fail their
    checksum. Exits 1 while anything is damaged or inconsistent."""
    from indexes.health import HealthReport, check
    from indexes.inspect import inspect_files

    settings = settings_of(ctx)
    found = inspect_files(settings)
    if repair:
        result = _repair(ctx, settings, found)
        report = result.after
        if as_json:
            out.print_json(result.model_dump_json())
        else:
            for action in result.actions or ["nothing to repair"]:
                out.print(f"repaired: {action}", highlight=False, markup=False)
            _render(report)
    else:
        if any(i.index == "store" for i in found):  # the library cannot open: the damage is the report
            report = HealthReport(consistent=False, issues=found)
        else:
            a = make_assistant(ctx)
            report = _with(check(a.library), found)
            a.close()
        if as_json:
            out.print_json(report.model_dump_json())
        else:
            _render(report)
    if not report.consistent:
        raise typer.Exit(1)


def _with(report, found):
    """A consistency report with the damaged files inspection found (each once)."""
    named = {(i.index, i.kind) for i in found}  # inspection names the file: its issue replaces the check's
    issues = list(found) + [i for i in report.issues if (i.index, i.kind) not in named]
    return report.model_copy(update={"issues": issues, "consistent": report.consistent and not found})


def _repair(ctx: typer.Context, settings, found):
    from foundation.locks import LockHeld, exclusive_lock
    from indexes.health import RepairReport, check, repair as run_repair
    from indexes.inspect import inspect_files
    from indexes.rebuild import remake_tampered, reset_damaged_indexes, restore_store_file

    settings.index_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = exclusive_lock(settings.index_dir / ".write.lock", blocking=False)
        lock.__enter__()
    except LockHeld as exc:
        fail(f"another process (pid {exc.pid or '?'}) is writing to the library; run doctor again when it ends")
    try:
        actions, again = restore_store_file(settings, found)
        from indexes.library import Library

        a = make_assistant(ctx)
        a._library = library = Library(settings, a.embedder, open_lost_store=True)  # the store may be new and empty
        before = _with(check(library), found)
        actions += reset_damaged_indexes(library, found)
        remade, parse = remake_tampered(library)
        actions += remade
        parsed, lost = _parse_again(library, again | parse)
        actions += parsed
        if lost and again:  # the store was lost and some papers cannot come back: touch no index
            actions.append("the indexes are left as they are (nothing is removed because the store went missing); "
                           "point --mirror at the papers' PDFs, or restore library.sqlite, and repair again")
            result = RepairReport(before=before, actions=actions, after=_with(check(library), inspect_files(settings)))
        else:
            fixed = run_repair(library)
            library.backup()
            result = RepairReport(before=before, actions=actions + fixed.actions,
                                  after=_with(fixed.after, inspect_files(settings)))
        a.close()
        return result
    finally:
        lock.__exit__(None, None, None)


def _parse_again(library, papers: set[str]) -> tuple[list[str], list[str]]:
    """Ingest `papers` again from the cache or mirror; (what was done, the papers that could not be)."""
    if not papers:
        return [], []
    from foundation.types import PaperStatus
    from ingest.inputs import read_inputs
    from ingest.pipeline import Ingestor

    ingestor = Ingestor(library)
    try:
        # The repair holds the writer lock that Ingestor.ingest takes: run its inner loop.
        results = ingestor._ingest(read_inputs(sorted(papers)), lambda e: None, retry_failed=True, sync=False)
    finally:
        ingestor.close()
    ok = {r.arxiv_id for r in results if r.status == PaperStatus.ok}
    lost = sorted(papers - ok)
    actions = [f"store: parsed {len(ok)} papers again from their PDFs"] if ok else []
    if lost:
        why = {r.arxiv_id: r.reason for r in results if r.status != PaperStatus.ok}
        actions.append(f"could not parse {len(lost)} papers again: "
                       + "; ".join(f"{aid}: {why.get(aid, '?')}" for aid in lost[:3]))
    return actions, lost


def _render(report) -> None:
    names = list(report.indexes)
    if report.papers:
        table = Table(title=f"{len(report.papers)} papers, {report.searchable} searchable passages")
        for col in ("arXiv id", "status", "store", *names, "other"):
            table.add_column(col, justify="left" if col in ("arXiv id", "status") else "right")
        for p in report.papers:
            version = f"v{p.version}" if p.version else ""
            table.add_row(data(p.arxiv_id + version), p.status.value, str(p.store),
                          *(str(p.indexes.get(n, 0)) for n in names), str(p.other or ""))
        out.print(table)
    if report.indexes:
        out.print("ids held: " + ", ".join(f"{n} {c}" for n, c in report.indexes.items()), markup=False)
    if report.writer:
        out.print(f"[yellow]an ingest (pid {report.writer}) is writing now: differences are expected until it ends[/yellow]")
    for issue in report.issues:
        console.print(f"[red]problem:[/red] {data(issue.message)}", highlight=False, soft_wrap=True)
    if report.consistent:
        out.print("[green]consistent[/green]: every ok paper's passages are in every index, and nothing else is")
    else:
        console.print(f"[red]{len(report.issues)} problem(s)[/red]: `paper-assistant doctor --repair` finishes or rolls back")
