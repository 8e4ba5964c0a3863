"""Key bindings and what each part of the screen does."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# paper-assistant

Ask questions about your papers (arXiv, PDFs, your BibTeX or Zotero library); every answer cites the passages it comes from.

## Asking
| key | |
|---|---|
| `enter` | ask the question typed below (a follow-up keeps the thread's context) |
| `esc` | cancel a running answer (what was written is kept, marked *cancelled*); else close the panel |
| `ctrl+r` | jump to the sources of the last answer; then `1`-`9` or `enter` opens one |
| click `[n]` | open the cited passage in the side panel |
| `n` (in the panel) | show the neighbouring passages of that paper |
| `o` (in the panel or the sources) | open the cited PDF at that page in your PDF viewer (settings: `pdf_viewer`) |
| `ctrl+n` | new conversation |
| `ctrl+o` | history: reopen a saved conversation |
| `ctrl+s` | export (save) the answer (or the whole thread) as Markdown with references and BibTeX |

## Library (`ctrl+l`)
| key | |
|---|---|
| type | filter by title, author, id or year |
| `down` / `tab` | from the filter into the table |
| `space` | mark a paper for the next question's scope |
| `enter` | ask about the marked papers (or the one under the cursor) |
| `x` | clear the scope (ask about all papers) |
| `a` | add papers: ids, URLs, reading-list files, PDFs, folders, a .bib or a Zotero folder |
| `d` | remove the paper under the cursor |
| `t` | build the RAPTOR summary tree of the marked papers (status then says *tree built*) |
| `s` | write a short cited summary of the marked papers into the thread |
| `esc` | back |

## Everywhere
`f2` settings (retrieval mode, HyDE, engine, model) · `f1` this help · `ctrl+p` commands · `ctrl+q` quit

The status line shows what the engine is doing: planning, searching, reading passages, writing, checking citations.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close"), Binding("f1", "close", show=False),
                Binding("q", "close", show=False)]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
