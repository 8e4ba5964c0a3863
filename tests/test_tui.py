"""The TUI driven with Pilot against a scripted backend: asking, streaming, citations, errors."""
from __future__ import annotations

import json

import pytest

textual = pytest.importorskip("textual", reason="the TUI needs the [tui] extra")

from foundation.config import Settings  # noqa: E402
from assistant.tui import create_app  # noqa: E402
from assistant.tui.widgets.citation_panel import CitationPanel  # noqa: E402
from assistant.tui.widgets.turn_view import TurnView  # noqa: E402
from tests.tui_fakes import ANSWER_TEXT  # noqa: E402
from tests.tui_pilot import SIZE, ask, make, notifications, settle  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", offline=True)


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
