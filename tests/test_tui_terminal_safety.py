"""The TUI shows paper and model text inert: escape sequences from a title, an author, a passage, a quote,
the answer's tokens or an engine error are shown as visible stand-ins, and `[/red]` in any of them is text,
not markup (a table cell or a toast read as markup ended the app)."""
from __future__ import annotations

import re

import pytest

textual = pytest.importorskip("textual")

from textual.widgets import DataTable  # noqa: E402

from foundation.config import Settings  # noqa: E402
from foundation.types import Paper, PaperRecord, PaperStatus  # noqa: E402
from assistant.tui import create_app  # noqa: E402
from assistant.tui.screens.library import LibraryScreen  # noqa: E402
from assistant.tui.widgets.citation_panel import CitationPanel  # noqa: E402
from assistant.tui.widgets.turn_view import TurnView  # noqa: E402
from tests import tui_fakes  # noqa: E402
from tests.test_tui import SIZE, ask, notifications, settle  # noqa: E402

ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m"
RAW = re.compile("[\x1b\x07\x9b]")
pytestmark = pytest.mark.anyio


@pytest.fixture
def hostile(monkeypatch):
    """The scripted backend's papers, passage and answer tokens, carrying markup and escape sequences."""
    paper = tui_fakes.PAPER_OF["1706.03762"]
    bad = paper.model_copy(update={"title": f"Attention [/red] {ESCAPES} [link=http://evil.example]x[/link]",
                                   "authors": (f"Mallory [/bold]{ESCAPES}", "Eve")})
    monkeypatch.setitem(tui_fakes.PAPER_OF, "1706.03762", bad)
    c11 = tui_fakes.CHUNKS["1706.03762-c11"]
    monkeypatch.setitem(tui_fakes.CHUNKS, c11.id, c11.model_copy(update={
        "text": c11.text + f" Planted [/red] {ESCAPES} text.", "section": f"3.2.1 Scaled [/red] {ESCAPES}"}))
    tokens = [*tui_fakes.ANSWER_TOKENS[:-1], f"[/red]{ESCAPES} ", "[1]."]
    monkeypatch.setattr(tui_fakes, "ANSWER_TOKENS", tokens)
    monkeypatch.setattr(tui_fakes, "ANSWER_TEXT", "".join(tokens))
    return [PaperRecord(paper=bad, status=PaperStatus.ok, n_chunks=3),
            PaperRecord(paper=Paper(arxiv_id="2401.00001", title=f"[/b]{ESCAPES}"), status=PaperStatus.failed,
                        reason=f"parse failed: [/red] {ESCAPES}")]


def make(tmp_path, records, **kwargs):
    def factory(settings):
        backend = tui_fakes.ScriptedAssistant(settings, [r.paper for r in records], **kwargs)
        backend.records = list(records)
        return backend

    return create_app(assistant_factory=factory, settings=Settings(home=tmp_path / "home", offline=True))


def shown(widget) -> str:
    return str(widget.render())


async def test_answer_citation_and_library_show_hostile_text_inert(tmp_path, hostile):
    app = make(tmp_path, hostile)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, f"What is [/red] {ESCAPES}?")
        await settle(pilot)
        view = app.main_screen.query_one(TurnView)
        assert view.turn.state == "done"
        for part in (".question", ".answer"):
            text = shown(view.query_one(part))
            assert not RAW.search(text) and "[/red]" in text and "␛]0;PWNED" in text, text
        await pilot.press("ctrl+r", "1")
        await pilot.pause()
        panel = app.main_screen.query_one(CitationPanel)
        assert panel.is_open
        for part in ("#cite-title", "#cite-meta", "#cite-passage"):
            text = shown(panel.query_one(part))
            assert not RAW.search(text) and "␛[2J" in text, (part, text)
        assert "Planted [/red]" in shown(panel.query_one("#cite-passage"))
        await pilot.press("escape", "ctrl+l")
        await settle(pilot)
        library = app.screen
        assert isinstance(library, LibraryScreen)
        table = library.query_one(DataTable)
        cells = " ".join(str(cell) for row in range(table.row_count) for cell in table.get_row_at(row))
        assert table.row_count == 2 and "[/red]" in cells and "Mallory [/bold]" in cells and not RAW.search(cells)


async def test_engine_errors_are_toasts_shown_inert(tmp_path, hostile):
    app = make(tmp_path, hostile, fail=RuntimeError(f"server said [/red] {ESCAPES} [link=http://evil.example]x[/link]"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "anything")
        await settle(pilot)
        toasts = " ".join(notifications(app))
        assert "server said [/red]" in toasts and not RAW.search(toasts), toasts
        assert app.is_running

