"""Open a cited PDF at its page in the system's viewer (the TUI's `o`). No textual here.

Viewers that take a page on the command line get it (zathura, evince, okular, mupdf; Preview on macOS through
its Go to Page dialog); xdg-open / open show the file from its first page. `settings.pdf_viewer` picks one, or is
a command of one's own with {path} and {page}. The command is an argument list, never a shell line: a path
with spaces or quotes stays one argument.
"""
from __future__ import annotations

import platform
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Callable

# name -> the arguments after the program, for a 1-based page
_WITH_PAGE: dict[str, Callable[[str, int], list[str]]] = {
    "zathura": lambda path, page: ["--page", str(page), path],
    "evince": lambda path, page: ["--page-index", str(page), path],
    "okular": lambda path, page: ["--page", str(page), path],
    "mupdf": lambda path, page: [path, str(page)],
}
_LINUX_ORDER = ("zathura", "evince", "okular", "mupdf")


class ViewerError(RuntimeError):
    """The PDF cannot be opened: no file, or no viewer; the message says what to do."""


def viewer_command(path: str, page: int, viewer: str = "auto", *, system: str | None = None,
                   which: Callable[[str], str | None] = shutil.which) -> tuple[list[str], bool]:
    """(the command that opens path at page, whether it goes to the page) for settings.pdf_viewer `viewer`."""
    system = system or platform.system()
    page = max(1, int(page))
    if "{path}" in viewer:
        return [arg.replace("{path}", path).replace("{page}", str(page)) for arg in shlex.split(viewer)], \
            "{page}" in viewer
    if viewer == "auto":
        if system == "Darwin":
            viewer = "preview"
        elif system == "Windows":
            return ["cmd", "/c", "start", "", path], False
        else:
            viewer = next((name for name in _LINUX_ORDER if which(name)), "xdg-open")
    if viewer in _WITH_PAGE:
        return [viewer, *_WITH_PAGE[viewer](path, page)], True
    if viewer == "preview":
        return ["osascript", "-e", _preview_script(path, page)], True
    if viewer in ("xdg-open", "open"):
        return [viewer, path], False
    raise ViewerError(f"unknown pdf_viewer {viewer!r}: use auto, {', '.join(_WITH_PAGE)}, preview, xdg-open, open "
                      "or a command with {path} and {page}")


def _preview_script(path: str, page: int) -> str:
    """AppleScript: open the file in Preview, then its Go to Page dialog (cmd-option-G) with the page."""
    quoted = path.replace("\\", "\\\\").replace('"', '\\"')
    return (f'tell application "Preview" to open POSIX file "{quoted}"\n'
            'tell application "Preview" to activate\n'
            'delay 0.5\n'
            'tell application "System Events" to keystroke "g" using {option down, command down}\n'
            f'tell application "System Events" to keystroke "{page}"\n'
            'tell application "System Events" to key code 36')


def open_pdf(path: str | None, page: int, viewer: str = "auto",
             which: Callable[[str], str | None] = shutil.which) -> tuple[list[str], bool]:
    """Start the viewer on path at page, detached (it outlives the app); returns what viewer_command did."""
    if not path:
        raise ViewerError("this paper has no PDF on disk")
    if not Path(path).is_file():
        raise ViewerError(f"the PDF is no longer there: {path} (ingest it again from where it is now)")
    command, paged = viewer_command(path, page, viewer, which=which)
    if which(command[0]) is None and not Path(command[0]).is_file():
        raise ViewerError(f"cannot open the PDF: {command[0]} is not installed (set pdf_viewer, e.g. "
                          "'zathura' or 'myviewer {path}')")
    try:
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as exc:
        raise ViewerError(f"cannot start {command[0]}: {exc.strerror or exc}") from exc
    return command, paged
