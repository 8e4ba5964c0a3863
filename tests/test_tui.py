"""The TUI driven with Pilot against a scripted backend: fast and deterministic."""
from __future__ import annotations

import json
import os

import pytest

textual = pytest.importorskip("textual")

from textual.widgets import DataTable, Input  # noqa: E402

from foundation.config import Settings  # noqa: E402
from assistant.tui import create_app  # noqa: E402
from assistant.tui.screens.add_papers import AddPapersScreen  # noqa: E402
from assistant.tui.screens.confirm import ConfirmScreen  # noqa: E402
from assistant.tui.screens.export import ExportScreen  # noqa: E402
from assistant.tui.screens.library import LibraryScreen  # noqa: E402
from assistant.tui.widgets.citation_panel import CitationPanel  # noqa: E402
from assistant.tui.widgets.turn_view import TurnView  # noqa: E402
from tests.tui_fakes import ANSWER_TEXT, ScriptedAssistant  # noqa: E402

SIZE = (110, 36)
pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", offline=True)


def make(settings, **kwargs):
    fakes: list[ScriptedAssistant] = []

    def factory(s):
        fakes.append(ScriptedAssistant(s, **kwargs))
        return fakes[-1]

    return create_app(assistant_factory=factory, settings=settings), fakes


async def wait_workers(pilot) -> None:
    """Wait for the app's workers; a failed one is the app's business (it notifies), not the test's."""
    from textual.worker import WorkerFailed

    try:
        await pilot.app.workers.wait_for_complete()
    except WorkerFailed:
        pass


async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await wait_workers(pilot)
    await pilot.pause()


async def ask(pilot, question: str) -> None:
    pilot.app.main_screen.query_one("#question", Input).value = question
    await pilot.press("enter")


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_ask_streams_answer_then_citation_and_neighbours(settings):
    app, fakes = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale dot products by 1/sqrt(d_k)?")
        await settle(pilot)
        fake = fakes[0]
        assert fake.tokens_sent == 6
        view = app.main_screen.query_one(TurnView)
        assert view.turn.state == "done"
        assert view.turn.text == ANSWER_TEXT
        assert "[1]" in str(view.query_one(".answer").render())
        # keyboard: ctrl+r focuses the sources, 1 opens citation [1]
        await pilot.press("ctrl+r", "1")
        await pilot.pause()
        panel = app.main_screen.query_one(CitationPanel)
        assert panel.is_open
        passage = str(panel.query_one("#cite-passage").render())
        assert "we scale the dot products by 1/sqrt(d_k)" in passage
        assert "Attention Is All You Need" in str(panel.query_one("#cite-title").render())
        assert "p. 4" in str(panel.query_one("#cite-meta").render())
        # the neighbouring passages of that paper
        panel.focus()
        await pilot.press("n")
        await settle(pilot)
        assert "Scaled Dot-Product Attention. The input" in str(panel.query_one("#cite-before").render())
        assert "Multi-Head" not in str(panel.query_one("#cite-before").render())
        assert "linearly project" in str(panel.query_one("#cite-after").render())
        await pilot.press("escape")
        assert not panel.is_open


async def test_click_on_marker_opens_citation(settings):
    app, _ = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale?")
        await settle(pilot)
        answer = app.main_screen.query_one(TurnView).query_one(".answer")
        plain = str(answer.render())
        x = plain.index("[1]") + 1  # the digit; +1 more for the padding
        assert "\n" not in plain[: x]
        await pilot.click(answer, offset=(x + 1, 0))
        await pilot.pause()
        assert app.main_screen.query_one(CitationPanel).is_open


async def test_escape_cancels_and_keeps_partial_answer(settings):
    app, fakes = make(settings, pause_after=2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale?")
        for _ in range(5):
            await pilot.pause()
        assert app.asking
        view = app.main_screen.query_one(TurnView)
        assert view.turn.text == "The dot products grow large for large d_k, "
        await pilot.press("escape")
        await pilot.pause()
        assert not app.asking
        assert view.turn.state == "cancelled"
        assert view.turn.text.startswith("The dot products")
        assert "cancelled" in str(view.query_one(".note").render())
        fakes[0].gate.set()  # the engine would go on; the app ignores what comes late
        await settle(pilot)
        assert view.turn.state == "cancelled" and fakes[0].tokens_sent == 2
        saved = list((settings.home / "history").glob("*.json"))
        assert len(saved) == 1 and json.loads(saved[0].read_text())["turns"][0]["state"] == "cancelled"
        # the app is alive: another question works
        await ask(pilot, "Again?")
        fakes[0].pause_after = None
        await settle(pilot)
        assert app.conversation.turns[-1].state == "done"


async def test_engine_error_is_a_notification_not_a_crash(settings):
    app, _ = make(settings, fail=RuntimeError("the model server is down"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why?")
        await settle(pilot)
        assert any("the model server is down" in m for m in notifications(app))
        assert app.conversation.turns[0].state == "failed"
        assert not app.asking and app.is_running


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


async def test_engine_that_cannot_start_is_reported_and_questions_fail_cleanly(settings):
    def broken(_settings):
        raise RuntimeError("index written with another embedder")

    app = create_app(assistant_factory=broken, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any("another embedder" in m for m in notifications(app))
        await ask(pilot, "Why?")
        await settle(pilot)
        assert app.conversation.turns[0].state == "failed" and not app.asking
        assert "another embedder" in app.conversation.turns[0].error


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


async def test_weakly_supported_sentences_are_underlined_and_counted(settings):
    from foundation.types import Verdict
    from tests.tui_fakes import scripted_answer

    app, _ = make(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale dot products by 1/sqrt(d_k)?")
        await settle(pilot)
        view = app.main_screen.query_one(TurnView)
        weak = "The dot products grow large for large d_k, pushing the softmax into regions with tiny gradients."
        strong = "Scaling by 1/sqrt(d_k) counteracts this."
        answer = scripted_answer("q").model_copy(update={"verdicts": (
            Verdict(sentence=weak, citations=(1,), supported=True, support=0.31),
            Verdict(sentence=strong, citations=(1,), supported=True, support=0.93))})
        view.finish(answer)
        await pilot.pause()
        content = view.query_one(".answer").render()
        underlined = [content.plain[s.start:s.end] for s in content.spans if "underline" in str(s.style)]
        assert underlined and "".join(underlined) == weak.rstrip("."), underlined
        assert "1 weakly supported" in str(view.query_one(".note").render())
