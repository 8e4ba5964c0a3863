"""The TUI on the real engine: a real index built through the app itself from one small real PDF
(the mirror), then, with the real local model (marked llm), a cited answer and its passage."""
from __future__ import annotations

import pytest

pytest.importorskip("textual", reason="the TUI needs the [tui] extra")

from textual.widgets import DataTable, Input  # noqa: E402

from foundation.config import Settings  # noqa: E402
from tests.conftest import make_mirror  # noqa: E402

pytestmark = pytest.mark.anyio
PAPER = "1907.11692"  # RoBERTa, the smallest PDF of the corpus
SIZE = (120, 40)


def real_app(tmp_path, embedder, llm=None):
    from assistant.api import Assistant
    from assistant.tui import create_app

    settings = Settings(home=tmp_path / "home", mirror=make_mirror(tmp_path / "mirror", [PAPER]), offline=True,
                        arxiv_delay_s=0.0)
    return create_app(assistant_factory=lambda s: Assistant(s, embedder=embedder, llm=llm), settings=settings)


async def wait_workers(pilot) -> None:
    """Wait for the app's workers; a failed one is the app's business (it notifies), not the test's."""
    from textual.worker import WorkerFailed

    try:
        await pilot.app.workers.wait_for_complete()
    except WorkerFailed:
        pass


async def settle(pilot, rounds: int = 3) -> None:
    for _ in range(rounds):
        await pilot.pause()
        await wait_workers(pilot)
    await pilot.pause()


async def add_paper_from_empty_library(pilot) -> None:
    """A fresh home: the app offers to add papers; add one by id and wait for the real ingest."""
    from assistant.tui.screens.confirm import ConfirmScreen

    app = pilot.app
    await settle(pilot)
    assert isinstance(app.screen, ConfirmScreen), "an empty library should offer to add papers"
    await pilot.press("enter")
    await pilot.pause()
    await pilot.press(*PAPER, "enter")
    await settle(pilot)
    records = {r.paper.arxiv_id: r for r in app.papers}
    assert records[PAPER].status.value == "ok" and records[PAPER].n_chunks > 20, records
    assert "RoBERTa" in records[PAPER].paper.title


async def test_real_ingest_and_library(tmp_path, embedder):
    app = real_app(tmp_path, embedder)
    async with app.run_test(size=SIZE) as pilot:
        await add_paper_from_empty_library(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        await pilot.press(*"roberta")
        await pilot.pause()
        assert table.row_count == 1
        app.screen.query_one(Input).value = "no such paper"
        await pilot.pause()
        assert table.row_count == 0


@pytest.mark.llm
async def test_real_answer_with_citation(tmp_path, embedder, llm):
    from assistant.tui.widgets.citation_panel import CitationPanel
    from assistant.tui.widgets.turn_view import TurnView

    app = real_app(tmp_path, embedder, llm)
    async with app.run_test(size=SIZE) as pilot:
        await add_paper_from_empty_library(pilot)
        app.main_screen.query_one("#question", Input).value = "What does RoBERTa change in BERT's pretraining?"
        await pilot.press("enter")
        await settle(pilot, rounds=5)
        turn = app.main_screen.query_one(TurnView).turn
        assert turn.state == "done", (turn.state, turn.error)
        assert turn.answer is not None and not turn.answer.abstained, turn.answer
        assert turn.answer.citations, turn.text
        n = turn.answer.citations[0].n
        app.open_citation(0, n)
        await pilot.pause()
        panel = app.main_screen.query_one(CitationPanel)
        assert panel.is_open and panel.hit.chunk.arxiv_id == PAPER
        assert panel.hit.chunk.text.split()[0] in str(panel.query_one("#cite-passage").render())
        panel.focus()
        await pilot.press("n")
        await settle(pilot)
        assert panel.query_one("#cite-after").display
