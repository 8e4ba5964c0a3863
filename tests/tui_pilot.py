"""Helpers for driving the TUI with Pilot against tests/tui_fakes.py's scripted backend."""
from __future__ import annotations

from textual.widgets import Input
from textual.worker import WorkerFailed

from assistant.tui import create_app
from tests.tui_fakes import ScriptedAssistant

SIZE = (110, 36)


def make(settings, **kwargs):
    """The app with a ScriptedAssistant factory; the list collects every backend the app built."""
    fakes: list[ScriptedAssistant] = []

    def factory(s):
        fakes.append(ScriptedAssistant(s, **kwargs))
        return fakes[-1]

    return create_app(assistant_factory=factory, settings=settings), fakes


async def wait_workers(pilot) -> None:
    """Wait for the app's workers; a failed one is the app's business (it notifies), not the test's."""
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
