"""The TUI driven with Pilot against a scripted backend: library, export, history, settings, help, RAPTOR."""
from __future__ import annotations

import os

import pytest

textual = pytest.importorskip("textual", reason="the TUI needs the [tui] extra")

from textual.widgets import DataTable, Input  # noqa: E402

from foundation.config import Settings  # noqa: E402
from assistant.tui.screens.add_papers import AddPapersScreen  # noqa: E402
from assistant.tui.screens.confirm import ConfirmScreen  # noqa: E402
from assistant.tui.screens.export import ExportScreen  # noqa: E402
from assistant.tui.screens.library import LibraryScreen  # noqa: E402
from assistant.tui.widgets.citation_panel import CitationPanel  # noqa: E402
from assistant.tui.widgets.turn_view import TurnView  # noqa: E402
from tests.tui_pilot import SIZE, ask, make, notifications, settle  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", offline=True)


async def test_library_add_bad_id_shows_error_and_app_lives(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, LibraryScreen)
        app.screen.query_one(DataTable).focus()
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AddPapersScreen)
        await pilot.press(*"not-an-id")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, LibraryScreen)
        assert any("not an arXiv id" in m for m in notifications(app))
        assert app.screen.query_one(DataTable).row_count == 4
        # and a good id afterwards is added
        app.screen.query_one(DataTable).focus()
        await pilot.press("a", *"2401.00001", "enter")
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 5


async def test_library_filter_as_you_type_and_scope(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+l")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        assert table.row_count == 4
        await pilot.press(*"bert")
        await pilot.pause()
        assert table.row_count == 2  # BERT and RoBERTa
        await pilot.press(*" 2019")
        await pilot.pause()
        assert table.row_count == 1
        await pilot.press("down", "space")
        await pilot.pause()
        assert app.scope == {"1907.11692"}
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.main_screen
        assert "scope: 1 of 4" in str(app.main_screen.query_one("#status-context").render())
        await ask(pilot, "What changed in RoBERTa?")
        await settle(pilot)
        assert fakes[0].questions[-1][1] == ("1907.11692",)


async def test_remove_paper_after_confirm(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+l")
        await pilot.pause()
        app.screen.query_one(DataTable).focus()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 3
        assert "1706.03762" not in {r.paper.arxiv_id for r in fakes[0].records}


async def test_export_markdown_with_references_and_bibtex(settings, tmp_path):
    app, _ = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale dot products?")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        target = tmp_path / "out" / "answer.md"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        text = target.read_text()
        assert text.startswith("**Q:** Why scale dot products?")
        assert "### References" in text and "Attention Is All You Need" in text and "p. 4" in text
        assert "@misc{vaswani2017_170603762" in text


async def test_history_reopens_and_follow_up_keeps_context(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale dot products?")
        await settle(pilot)
        first_id = app.conversation.id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not app.conversation.turns
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert app.conversation.id == first_id and len(app.conversation.turns) == 1
        assert len(app.main_screen.query(TurnView)) == 1
        await ask(pilot, "And without it?")
        await settle(pilot)
        sent = fakes[0].questions[-1][0]
        assert sent.startswith("And without it?")
        assert "Previous question: Why scale dot products?" in sent
        assert "grow large" in sent and "[1]" not in sent


async def test_empty_library_offers_to_add_papers(settings):
    app, fakes = make(settings, papers=[])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AddPapersScreen)
        await pilot.press(*"1706.03762", "enter")
        await settle(pilot)
        assert [r.paper.arxiv_id for r in app.papers] == ["1706.03762"]


async def test_settings_saved_to_config_file(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await pilot.pause()
        from textual.widgets import Select, Switch

        assert [o[0] for o in app.screen.query_one(Select)._options] == ["dense", "bm25", "hybrid", "collapsed"]
        app.screen.query_one(Select).value = "bm25"
        app.screen.query_one("#hyde", Switch).value = True
        await pilot.press("ctrl+s")
        await pilot.pause()
        config = (settings.home / "config.toml").read_text()
        assert 'retrieval_mode = "bm25"' in config and "hyde = true" in config
        assert app.settings.retrieval_mode == "bm25"
        await ask(pilot, "Why?")
        await settle(pilot)
        assert fakes[0].questions[-1][2] == "bm25"


async def test_help_screen(settings):
    app, _ = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen is app.main_screen


async def test_tree_status_and_summary_draft_with_its_citation(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert "tree built" in str(table.get_row("1706.03762")[5])
        assert "tree built" not in str(table.get_row("1810.04805")[5])
        table.focus()
        await pilot.press("s")
        await settle(pilot)
        assert app.screen is app.main_screen
        turn = app.conversation.turns[-1]
        assert turn.question.startswith("Summarise: Attention") and "[1]" in turn.text
        app.open_citation(len(app.conversation.turns) - 1, 1)  # its leaf is fetched from the engine
        await settle(pilot)
        panel = app.main_screen.query_one(CitationPanel)
        assert panel.is_open and "linearly project" in str(panel.query_one("#cite-passage").render())




async def test_settings_saved_from_the_tui_round_trip_through_the_config_file(settings, monkeypatch):
    from foundation.config import config_path, load_settings, save_settings
    from assistant.tui.screens.settings import SettingsScreen

    # A config file that already holds a list, a table and a comment: the TUI must keep them typed.
    path = config_path(settings.home)
    typed = settings.model_copy(update={"indexes": ["bm25"], "fusion_weights": {"dense": 1.0, "bm25": 2.0}})
    save_settings(typed, ["indexes", "fusion_weights"], path)
    path.write_text("# mine\n" + path.read_text())
    app, _ = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for endpoint in ("http://127.0.0.1:9/v1", ""):
            await pilot.press("f2")
            await settle(pilot)
            assert isinstance(app.screen, SettingsScreen)
            app.screen.query_one("#llm_base_url", Input).value = endpoint
            app.screen.query_one("#hyde").value = not app.settings.hyde
            await pilot.press("ctrl+s")
            await settle(pilot)
            loaded = load_settings(path, home=settings.home)
            assert loaded.llm_base_url == (endpoint or None)  # a cleared endpoint is unset, never "None"
            assert loaded.hyde == app.settings.hyde
    text = path.read_text()
    assert text.startswith("# mine") and "None" not in text
    assert loaded.indexes == ["bm25"] and loaded.fusion_weights == {"dense": 1.0, "bm25": 2.0}
    # Every field, whatever its type, reads back as written (with no PAPER_ASSISTANT_* variable over it:
    # `make test` exports PAPER_ASSISTANT_MIRROR).
    for name in [k for k in os.environ if k.startswith("PAPER_ASSISTANT_")]:
        monkeypatch.delenv(name)
    every = Settings(home=settings.home, mirror=settings.home / "m", chroma_url="http://127.0.0.1:8000",
                     raptor_context_tokens=1024, indexes=["colbert"], fusion_weights={"bm25": 1.0})
    save_settings(every, list(Settings.model_fields), path)
    loaded = load_settings(path)
    assert loaded == every, {k: (getattr(loaded, k), getattr(every, k)) for k in Settings.model_fields
                             if getattr(loaded, k) != getattr(every, k)}
