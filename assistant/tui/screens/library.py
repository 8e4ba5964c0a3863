"""The library: indexed papers with status, filter as you type, add / remove, scope the next question."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Static

from assistant.tui.hosts import LibraryHost
from foundation.types import PaperRecord, PaperStatus, ProgressEvent
from foundation.terminal import inert


COLUMNS = ("", "id", "title", "year", "chunks", "status", "authors")
TITLE_CHARS = 48


def status_label(record: PaperRecord, tree: bool = False) -> Text:
    """ok / failed with reason / pending, plus "tree built" once its RAPTOR summary tree exists."""
    if record.status == PaperStatus.ok:
        label = Text("ok", style="green")
        if tree:
            label.append(" · tree built", style="cyan")
        return label
    if record.status == PaperStatus.failed:
        return Text(inert(f"failed: {record.reason}"), style="red")
    return Text(str(getattr(record.status, "value", record.status)), style="yellow")


def authors_label(record: PaperRecord) -> Text:
    """The first author (et al.): a Text, since a table cell given a str reads it as markup."""
    a = record.paper.authors
    if not a:
        return Text("")
    return Text(inert(a[0] + (" et al." if len(a) > 1 else "")))


def matches(record: PaperRecord, query: str) -> bool:
    """Every word of the query appears in the title, authors, id, year, status, citation key, DOI or file name."""
    p = record.paper
    hay = " ".join([p.arxiv_id, p.title, " ".join(p.authors), str(p.year or ""), record.status.value,
                    record.reason, p.citation_key, p.doi, p.eprint, Path(p.pdf_path).name if p.is_local and
                    p.pdf_path else ""]).lower()
    return all(word in hay for word in query.lower().split())


class LibraryScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("a", "app.add_papers", "Add"),
        Binding("d", "remove", "Remove"),
        Binding("space", "toggle", "Mark for scope"),
        Binding("enter", "ask_scoped", "Ask about marked", show=True),
        Binding("x", "clear_scope", "All papers"),
        Binding("r", "retry", "Retry failed", show=False),
        Binding("t", "build_tree", "Build tree"),
        Binding("s", "summarize", "Summarise"),
        Binding("slash", "focus_filter", "Filter"),
    ]

    app: "LibraryHost"  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[PaperRecord] = []
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield Input(placeholder="/ filters by title, author, id, key, file or year (enter or down: back to the table)", id="filter")
        yield DataTable(id="papers", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="ingest"):
            yield Static(id="ingest-label")
            yield ProgressBar(id="ingest-bar", show_eta=False)
        yield Static(id="library-summary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col or "mark")
        self.query_one("#ingest").display = False
        self.marked = set(self.app.scope)
        # The table has focus so that the footer's letter keys act at once (a new user pressed `a` and
        # typed into the filter); any other printable key starts filtering (see on_key).
        table.focus()
        if self.app.papers is not None:
            self.show_papers(self.app.papers)

    def on_screen_resume(self) -> None:
        self.marked = set(self.app.scope)
        self._fill()

    # --- data
    def show_papers(self, records: list[PaperRecord]) -> None:
        self.records = list(records)
        if self.is_mounted:
            self._fill()

    def shown_records(self) -> list[PaperRecord]:
        query = self.query_one("#filter", Input).value
        return [r for r in self.records if matches(r, query)]

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        if not table.columns:
            return
        keep = self._cursor_id()
        table.clear()
        shown = self.shown_records()
        for r in shown:
            p = r.paper
            version = f"v{p.version}" if p.version else ""
            table.add_row("✓" if p.arxiv_id in self.marked else " ", Text(inert(p.arxiv_id + version)),
                          Text(inert(p.title[:TITLE_CHARS] + ("…" if len(p.title) > TITLE_CHARS else ""))) if p.title else Text("(no title)", style="dim"),
                          str(p.year or ""), str(r.n_chunks), status_label(r, p.arxiv_id in self.app.trees), authors_label(r), key=p.arxiv_id)
        if keep is not None and keep in {r.paper.arxiv_id for r in shown}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        ok = sum(r.status == PaperStatus.ok for r in self.records)
        failed = sum(r.status == PaperStatus.failed for r in self.records)
        scope = f"{len(self.marked)} marked for the next question" if self.marked else "questions use all papers"
        self.query_one("#library-summary", Static).update(Content(
            f"{len(shown)} of {len(self.records)} papers shown · {ok} ok · {failed} failed · {scope}"))

    def _cursor_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    # --- filter as you type
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one(DataTable).focus()

    def on_key(self, event) -> None:
        search = self.query_one("#filter", Input)
        if event.key == "down" and self.focused is search:
            self.query_one(DataTable).focus()
            event.stop()
        elif (self.focused is self.query_one(DataTable) and event.is_printable and event.character
              and event.character not in self._letter_keys()):
            search.focus()
            search.insert_text_at_cursor(event.character)
            event.stop()

    def _letter_keys(self) -> set[str]:
        return {b.key for b in self.BINDINGS if isinstance(b, Binding) and len(b.key) == 1} | {" ", "/"}

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    # --- actions
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle(self) -> None:
        arxiv_id = self._cursor_id()
        if arxiv_id is None:
            return
        self.marked.symmetric_difference_update({arxiv_id})
        self.app.set_scope(self.marked)
        self._fill()

    def action_clear_scope(self) -> None:
        self.marked.clear()
        self.app.set_scope(())
        self._fill()

    def action_ask_scoped(self) -> None:
        if not self.marked:
            arxiv_id = self._cursor_id()
            if arxiv_id is None:
                return
            self.marked = {arxiv_id}
        self.app.set_scope(self.marked)
        self.app.pop_screen()
        self.app.main_screen.query_one("#question").focus()
        self.notify(f"the next question is about {len(self.marked)} paper(s)", title="scope")

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_ask_scoped()

    def action_remove(self) -> None:
        from assistant.tui.screens.confirm import ConfirmScreen

        arxiv_id = self._cursor_id()
        if arxiv_id is None:
            return
        record = next((r for r in self.records if r.paper.arxiv_id == arxiv_id), None)
        title = f" ({record.paper.title[:60]})" if record and record.paper.title else ""

        def answered(yes: bool | None) -> None:
            if yes:
                self.marked.discard(arxiv_id)
                self.app.remove_paper(arxiv_id)

        self.app.push_screen(ConfirmScreen(f"Remove {arxiv_id}{title} and its passages from every index?",
                                           yes="Remove", no="Keep"), answered)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """RAPTOR keys only when the engine offers them."""
        if action == "build_tree":
            return self.app.engine_offers("build_tree")
        if action == "summarize":
            return self.app.engine_offers("summarize")
        return True

    def _chosen(self) -> list[str]:
        """The marked papers, else the one under the cursor."""
        if self.marked:
            return sorted(self.marked)
        arxiv_id = self._cursor_id()
        return [arxiv_id] if arxiv_id else []

    def action_build_tree(self) -> None:
        ids = self._chosen()
        if ids:
            self.app.build_tree(ids)

    def action_summarize(self) -> None:
        ids = self._chosen()
        if ids:
            self.app.summarize(ids)
            self.app.pop_screen()

    def action_retry(self) -> None:
        arxiv_id = self._cursor_id()
        if arxiv_id is not None:
            self.app.ingest([arxiv_id])

    # --- ingest progress (driven by the app's worker messages)
    def ingest_started(self, n: int, what: str = "adding") -> None:
        self.query_one("#ingest").display = True
        self.query_one("#ingest-label", Static).update(Content(f"{what}: {n} item(s)…"))
        self.query_one("#ingest-bar", ProgressBar).update(total=None, progress=0)

    def ingest_progress(self, e: ProgressEvent) -> None:
        self.query_one("#ingest").display = True
        bar = self.query_one("#ingest-bar", ProgressBar)
        if e.stage in ("fetch", "index") and e.total:
            bar.update(total=e.total, progress=e.done)
            self.query_one("#ingest-label", Static).update(Content(inert(f"papers {e.done}/{e.total} {e.item}")))
        elif e.stage == "embed" and e.total:
            self.query_one("#ingest-label", Static).update(Content(inert(f"embedding {e.item} {e.done}/{e.total}")))
        elif e.message:
            self.query_one("#ingest-label", Static).update(Content(inert(e.message[:60])))

    def ingest_finished(self) -> None:
        self.query_one("#ingest").display = False
