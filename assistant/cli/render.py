"""Rich rendering for the CLI: progress bars for long work, tables for results."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from assistant.cli.common import data
from foundation.types import Answer, Hit, IngestResult, PaperRecord, PaperStatus, paper_ref


def failure_groups(failed: Sequence[IngestResult]) -> list[tuple[str, list[str]]]:
    """Failures grouped by reason, most frequent first: the paper's own id in a reason does not split a group
    (39 papers that could not reach the arXiv API are one row)."""
    groups: dict[str, list[str]] = {}
    for r in failed:
        reason = r.reason.replace(r.arxiv_id, "<id>")
        groups.setdefault(reason, []).append(r.item or r.arxiv_id)  # a PDF from disk by its file, not its id
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def print_ingest_summary(console: Console, results: Sequence[IngestResult], seconds: float) -> None:
    # An unreadable reading-list item (a file with no ids, a path that is not there) is an input problem,
    # not a paper that failed.
    for r in results:
        if r.kind == "input":
            console.print(f"[yellow]input skipped:[/yellow] {data(r.reason)}", highlight=False)
    results = [r for r in results if r.kind == "paper"]
    for r in results:
        if r.note:  # duplicates, edited PDFs (new versions), library metadata added to papers already indexed
            console.print(f"[dim]{data(r.item or r.arxiv_id)}: {data(r.note)}[/dim]", highlight=False)
    ok = list({r.arxiv_id: r for r in results if r.status == PaperStatus.ok}.values())  # a duplicate counts once
    copies = sum(r.status == PaperStatus.ok for r in results) - len(ok)
    failed = [r for r in results if r.status == PaperStatus.failed]
    fresh = [r for r in ok if not r.skipped]
    for r in fresh:
        if r.reason:  # pages left out of a paper that was indexed: a reader should know what is missing
            console.print(f"[yellow]{data(r.arxiv_id)}[/yellow] indexed without: {data(r.reason)}", highlight=False)
    if failed:
        table = Table(title=f"{len(failed)} failed", show_lines=False)
        table.add_column("papers", overflow="fold")
        table.add_column("reason", overflow="fold")
        for reason, ids in failure_groups(failed):
            shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
            table.add_row(data(f"{len(ids)}: {shown}" if len(ids) > 1 else shown), data(reason))
        console.print(table)
    dupes = f", {copies} duplicate file{'s' * (copies != 1)} counted once" if copies else ""
    console.print(f"[green]{len(ok)} ok[/green] ({len(fresh)} new, {len(ok) - len(fresh)} already indexed{dupes}), "
                  f"[red]{len(failed)} failed[/red], {sum(r.n_chunks for r in fresh)} new chunks, {seconds:.1f} s")


def print_papers(console: Console, records: Sequence[PaperRecord]) -> None:
    table = Table(title=f"{len(records)} papers")
    for col in ("id", "title", "year", "chunks", "status"):
        table.add_column(col, overflow="fold")
    for r in records:
        status = ("[green]ok[/green]" + (f" ({data(r.reason)})" if r.reason else "")) if r.status == PaperStatus.ok else (
            f"[red]failed[/red]: {data(r.reason)}" if r.status == PaperStatus.failed else data(r.status.value))
        p = r.paper
        version = f"v{p.version}" if p.version else ""
        title = data(p.title[:70])
        if p.is_local:  # a PDF from disk: where it is, and the key the user's library knows it by
            title += f"\n[dim]{data(Path(p.pdf_path or '').name)}{' · ' + data(p.citation_key) if p.citation_key else ''}[/dim]"
        elif p.citation_key:
            title += f"\n[dim]{data(p.citation_key)}[/dim]"
        table.add_row(data(p.arxiv_id + version), title, str(p.year or ""), str(r.n_chunks), status)
    console.print(table)


def print_hits(console: Console, hits: Sequence[Hit]) -> None:
    if not hits:
        console.print("no passages found (is the index empty? run `paper-assistant ingest ...`)")
    for h in hits:
        c = h.chunk
        console.print(f"[bold]{h.rank}.[/bold] [cyan]{data(h.paper_title or c.arxiv_id)}[/cyan] ({paper_ref(c.arxiv_id)}) "
                      f"§ {data(c.section or '-')}, {data(c.pages_label)}  [dim]score {h.score:.3f} {data(h.source)}[/dim]",
                      highlight=False)
        if h.paper and h.paper.is_local and h.paper.pdf_path:
            console.print(f"   [dim]{data(h.paper.pdf_path)}, page {c.page_start}[/dim]", highlight=False)
        text = " ".join(c.text.split())
        console.print(f"   {text[:300]}{'…' if len(text) > 300 else ''}", highlight=False, markup=False)


def print_answer(console: Console, answer: Answer, weak_below: float = 0.5) -> None:
    console.print()
    console.print(answer.text or "(no answer)", highlight=False, markup=False)
    if answer.error:
        console.print(f"[red]the model failed: {data(answer.error)}[/red]", highlight=False, soft_wrap=True)
    if answer.partial:
        console.print("[yellow](partial answer: generation stopped early)[/yellow]")
    if answer.abstained and answer.abstain_reason:
        console.print(f"[dim]why: {data(answer.abstain_reason)}[/dim]", highlight=False)
    if answer.extractive:
        console.print("[dim](quoted from the papers: no generated sentence passed the support check)[/dim]")
    weak = answer.weak_sentences(weak_below)
    if weak:
        console.print(f"[yellow]weakly supported ({len(weak)}):[/yellow]")
        for sentence in weak:
            console.print(f"  [yellow]? {data(sentence)}[/yellow]", highlight=False)
    if answer.citations:
        console.print("\n[bold]Sources[/bold]")
        for c in answer.citations:
            console.print(data(c.label), highlight=False)
            if c.pdf_path:  # where to read it: the PDF on disk and the page to open
                console.print(f"   [dim]{data(c.pdf_path)}, page {c.page_start}[/dim]", highlight=False)
            if c.quote and c.quote[:40] not in answer.text:  # a quoted answer already shows it
                console.print(f"   [dim]“{data(c.quote[:240])}”[/dim]", highlight=False)
    t = answer.timings
    if t:
        console.print("[dim]" + data(", ".join(f"{k} {v:.1f}s" for k, v in t.items())) + "[/dim]")
