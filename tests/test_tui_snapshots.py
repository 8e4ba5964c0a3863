"""Snapshots of the main screens at a fixed terminal size with the scripted backend (deterministic).

Update after an intended change: pytest tests/test_tui_snapshots.py --snapshot-update
"""
from __future__ import annotations

import pytest

pytest.importorskip("textual", reason="the TUI needs the [tui] extra")

from textual.widgets import DataTable, Input  # noqa: E402

from foundation.config import Settings  # noqa: E402
from assistant.tui import create_app  # noqa: E402
from tests.tui_fakes import ScriptedAssistant  # noqa: E402

SIZE = (110, 34)


@pytest.fixture
def app(tmp_path):
    return create_app(assistant_factory=lambda s: ScriptedAssistant(s, pause_after=None),
                      settings=Settings(home=tmp_path / "home", offline=True))


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


async def answered(pilot) -> None:
    await settle(pilot)
    pilot.app.main_screen.query_one("#question", Input).value = "Why does the Transformer scale dot products by 1/sqrt(d_k)?"
    await pilot.press("enter")
    await settle(pilot)


def test_answer_with_citation_panel(snap_compare, app):
    async def run_before(pilot):
        await answered(pilot)
        await pilot.press("ctrl+r", "1")
        await settle(pilot)
        pilot.app.clear_notifications()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_library(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        pilot.app.screen.query_one(DataTable).focus()
        await pilot.press("down", "space")
        await settle(pilot)
        pilot.app.clear_notifications()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_settings(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
