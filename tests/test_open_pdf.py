"""The cited page, one key away: the command each viewer gets, and the TUI's `o` running a real command (a
small script standing in for the viewer writes down the arguments it was started with)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from assistant.viewer import ViewerError, open_pdf, viewer_command
from tests.conftest import PAPERS

PDF = "/home/me/papers/My Paper (2021).pdf"


def only(*installed: str):
    return lambda name: f"/usr/bin/{name}" if name in installed else None


@pytest.mark.parametrize("installed, expected", [
    (("zathura", "evince"), ["zathura", "--page", "7", PDF]),
    (("evince", "okular"), ["evince", "--page-index", "7", PDF]),
    (("okular",), ["okular", "--page", "7", PDF]),
    (("mupdf",), ["mupdf", PDF, "7"]),
    ((), ["xdg-open", PDF]),
])
def test_linux_viewers_get_the_page(installed, expected):
    command, paged = viewer_command(PDF, 7, "auto", system="Linux", which=only(*installed))
    assert command == expected and paged == (expected[0] != "xdg-open")


def test_macos_preview_goes_to_the_page_and_the_path_stays_one_argument():
    command, paged = viewer_command('/Users/me/a "quoted" paper.pdf', 12, "auto", system="Darwin")
    assert command[:2] == ["osascript", "-e"] and paged
    script = command[2]
    assert 'open POSIX file "/Users/me/a \\"quoted\\" paper.pdf"' in script and 'keystroke "12"' in script
    assert viewer_command(PDF, 3, "open", system="Darwin") == (["open", PDF], False)


def test_own_command_and_named_viewers():
    command, paged = viewer_command(PDF, 4, "sioyek --page {page} {path}", system="Linux")
    assert command == ["sioyek", "--page", "4", PDF] and paged
    assert viewer_command(PDF, 0, "zathura")[0] == ["zathura", "--page", "1", PDF]  # pages start at 1
    with pytest.raises(ViewerError, match="unknown pdf_viewer"):
        viewer_command(PDF, 1, "acroread")


def test_open_pdf_says_what_is_wrong(tmp_path):
    with pytest.raises(ViewerError, match="no PDF on disk"):
        open_pdf(None, 1)
    with pytest.raises(ViewerError, match="no longer there"):
        open_pdf(str(tmp_path / "gone.pdf"), 1)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes((PAPERS / "2305.13245.pdf").read_bytes())
    with pytest.raises(ViewerError, match="not installed"):
        open_pdf(str(pdf), 1, "zathura", which=lambda name: None)


def recorder(tmp_path: Path) -> tuple[str, Path]:
    """A pdf_viewer command whose program writes the arguments it got to a file."""
    out = tmp_path / "viewer-args.txt"
    script = tmp_path / "viewer.py"
    script.write_text(f"import sys\nopen({str(out)!r}, 'w').write('\\n'.join(sys.argv[1:]))\n")
    return f"{sys.executable} {script} --page {{page}} {{path}}", out


def wait_for(path: Path, seconds: float = 10.0) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.is_file() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"the viewer command never ran ({path} not written)")


@pytest.mark.anyio
async def test_tui_o_opens_the_cited_page(tmp_path):
    pytest.importorskip("textual")
    from foundation.config import Settings
    from assistant.tui import create_app
    from assistant.tui.widgets.citation_panel import CitationPanel
    from tests.tui_pilot import ask, notifications, settle
    from tests.tui_fakes import ScriptedAssistant

    pdf = tmp_path / "my papers" / "attention.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes((PAPERS / "1706.03762.pdf").read_bytes())
    command, out = recorder(tmp_path)

    class WithPdf(ScriptedAssistant):
        """The scripted answer, its citations carrying the PDF on disk as Assistant.ask_stream fills them."""

        async def aask_stream(self, question, papers=None, mode=None):
            async for event in super().aask_stream(question, papers, mode):
                if event.kind == "answer":
                    answer = event.answer
                    cited = tuple(c.model_copy(update={"pdf_path": str(pdf)}) for c in answer.citations)
                    event = event.model_copy(update={"answer": answer.model_copy(update={"citations": cited})})
                yield event

    settings = Settings(home=tmp_path / "home", offline=True, pdf_viewer=command)
    app = create_app(assistant_factory=lambda s: WithPdf(s), settings=settings)
    async with app.run_test(size=(110, 36)) as pilot:
        await settle(pilot)
        await ask(pilot, "Why scale dot products by 1/sqrt(d_k)?")
        await settle(pilot)
        await pilot.press("ctrl+r", "1")  # the sources, then citation [1] in the panel
        await pilot.pause()
        panel = app.main_screen.query_one(CitationPanel)
        assert panel.is_open and f"{pdf} · page 4" in str(panel.query_one("#cite-meta").render())
        panel.focus()
        await pilot.press("o")
        await settle(pilot)
        assert wait_for(out).splitlines() == ["--page", "4", str(pdf)]  # one argument, spaces and all
        assert any("opened attention.pdf at page 4" in n for n in notifications(app))

        # From the sources list too; a file that is gone says so instead.
        out.unlink()
        pdf.unlink()
        await pilot.press("ctrl+r", "o")
        await settle(pilot)
        assert not out.exists()
        assert any("no longer there" in n for n in notifications(app))
