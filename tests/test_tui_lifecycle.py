"""The app's life around the engine: quitting is instant (ctrl+q ends the app while engine work still
runs in its threads; the real process then leaves with os._exit, and bench/tui_quit.py times that end
to end), and the engine's note that it started the model server becomes a notification."""
from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

pytest.importorskip("textual", reason="the TUI needs the [tui] extra")

from foundation.config import Settings  # noqa: E402
from assistant.tui import create_app  # noqa: E402
from assistant.tui.lifecycle import run  # noqa: E402
from tests.tui_fakes import ScriptedAssistant  # noqa: E402

NOTE = "stopping the local model server this session started"


class SlowWarmUp(ScriptedAssistant):
    """Its warm-up search blocks in a thread, like loading the embedding model (5-9 s) does."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.warming = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    async def asearch(self, query, k=None, mode=None, papers=None):
        def block() -> None:
            self.thread = threading.current_thread()
            self.warming.set()
            self.release.wait(60)

        await asyncio.to_thread(block)
        return []

    def server_exit_note(self) -> str:
        return NOTE


def test_ctrl_q_exits_without_waiting_for_engine_threads(tmp_path, capsys) -> None:
    engines: list[SlowWarmUp] = []

    def factory(settings: Settings) -> SlowWarmUp:
        engines.append(SlowWarmUp(settings))
        return engines[-1]

    app = create_app(assistant_factory=factory, settings=Settings(home=tmp_path / "home", offline=True))
    pressed: list[float] = []

    async def auto_pilot(pilot) -> None:
        while not (engines and engines[0].warming.is_set()):
            await asyncio.sleep(0.02)
        pressed.append(time.perf_counter())
        await pilot.press("ctrl+q")

    code = run(app, headless=True, size=(110, 36), auto_pilot=auto_pilot)
    quit_s = time.perf_counter() - pressed[0]
    engine = engines[0]
    still_loading = engine.thread is not None and engine.thread.is_alive() and not engine.release.is_set()
    engine.release.set()
    err = capsys.readouterr().err
    with capsys.disabled():
        print(f"\nctrl+q to app exit, warm-up thread still busy: {quit_s * 1000:.0f} ms")
    assert code == 0
    assert still_loading, "the app waited for the warm-up thread before it exited"
    assert NOTE in err  # the exit note says what becomes of the model server


class StartsTheServer(ScriptedAssistant):
    """Says, from its worker thread, that it started the model server, as make_llm does."""

    server_notice = None

    async def aask_stream(self, question, papers=None, mode=None):
        await asyncio.to_thread(self.server_notice, "started the local model server (0.5B, ~6.1 GB of memory)")
        async for event in super().aask_stream(question, papers, mode):
            yield event


@pytest.mark.anyio
async def test_starting_the_model_server_is_a_notification(tmp_path) -> None:
    from textual.widgets import Input

    app = create_app(assistant_factory=StartsTheServer, settings=Settings(home=tmp_path / "home", offline=True))
    async with app.run_test(size=(110, 36)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        app.main_screen.query_one("#question", Input).value = "What is attention?"
        await pilot.press("enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if any("started the local model server" in n.message for n in app._notifications):
                break
        notes = [(n.title, n.message) for n in app._notifications]
    assert ("local model server", "started the local model server (0.5B, ~6.1 GB of memory)") in notes


def test_leaving_mid_extension_build_removes_only_its_own_build_lock(tmp_path, monkeypatch) -> None:
    from assistant.tui.lifecycle import release_build_locks

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    ours = tmp_path / "ext" / "segmented_maxsim_cpp" / "lock"
    theirs = tmp_path / "ext" / "filter_pids_cpp" / "lock"  # another process's build: not open here
    elsewhere = tmp_path / "other" / "lock"
    for path in (ours, theirs, elsewhere):
        path.parent.mkdir(parents=True)
        path.touch()
    ours.unlink()
    held = os.open(ours, os.O_CREAT | os.O_EXCL)  # what torch's FileBaton.try_acquire does, and keeps open
    other = os.open(elsewhere, os.O_RDONLY)
    try:
        assert release_build_locks() == [str(ours)]
    finally:
        os.close(held)
        os.close(other)
    assert not ours.exists() and theirs.exists() and elsewhere.exists()
