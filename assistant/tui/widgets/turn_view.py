"""One question and its answer: streams in token by token; [n] markers are links; sources below."""
from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from assistant.tui.history import Turn
from foundation.terminal import inert
from foundation.types import Answer, page_span, paper_ref

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def answer_markup(text: str, turn_index: int, weak: tuple[str, ...] = ()) -> Content:
    """Answer text with every [n] (also [1, 2]) turned into a link that opens citation n; the weakly supported
    sentences underlined in the warning colour, so a student reads them as doubtful. The text is never parsed
    as markup (it holds the papers' words: "[/red]" or "[2J" in a quote ended the app); only the markers are."""
    spans = _spans(text, weak)
    out: list[Content] = []
    pos = 0

    def plain(start: int, end: int) -> None:
        cuts = sorted({start, end} | {x for span in spans for x in span if start < x < end})
        for a, b in zip(cuts, cuts[1:]):
            piece = text[a:b]
            out.append(Content.styled(piece, "underline $warning") if any(s <= a and b <= e for s, e in spans)
                       else Content(piece))

    for m in MARKER.finditer(text):
        plain(pos, m.start())
        parts = re.split(r"(\s*[,;]\s*)", m.group(1))  # digits and separators only: safe as markup
        linked = "".join(p if not p.strip().isdigit()
                         else f"[@click=screen.open_citation({turn_index},{int(p)})]{p}[/]" for p in parts)
        out.append(Content.from_markup(rf"[b $accent]\[{linked}][/]"))
        pos = m.end()
    plain(pos, len(text))
    return Content("").join(out)


def _spans(text: str, sentences: tuple[str, ...]) -> list[tuple[int, int]]:
    spans = []
    for sentence in sentences:
        core = sentence.rstrip(".!?").strip()
        at = text.find(core) if core else -1
        if at >= 0:
            spans.append((at, at + len(core)))
    return spans


class SourcesList(OptionList):
    """The cited passages of one answer; enter (or a digit) opens one in the citation panel, o its PDF at the
    cited page."""

    BINDINGS = [Binding(str(n), f"open_number({n})", show=False) for n in range(1, 10)] + [
        Binding("o", "open_pdf", "Open the PDF", show=False)]

    class Open(Message):
        def __init__(self, turn_index: int, n: int) -> None:
            super().__init__()
            self.turn_index = turn_index
            self.n = n

    def __init__(self, turn_index: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn_index = turn_index

    def action_open_number(self, n: int) -> None:
        index = self.get_option_index(str(n)) if self._has(str(n)) else None
        if index is not None:
            self.highlighted = index
        self.post_message(self.Open(self.turn_index, n))

    def action_open_pdf(self) -> None:
        option = self.highlighted_option if self.highlighted is not None else None
        if option is not None and option.id:
            self.app.open_cited_pdf(self.turn_index, int(option.id))  # type: ignore[attr-defined]

    def _has(self, option_id: str) -> bool:
        try:
            self.get_option_index(option_id)
            return True
        except Exception:
            return False

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Open(self.turn_index, int(event.option.id)))


class TurnView(Vertical):
    def __init__(self, turn: Turn, index: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn = turn
        self.index = index

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(("Q ", "bold $primary"), inert(self.turn.question)), classes="question")
        yield Static(classes="answer")
        yield Static(classes="note")
        yield SourcesList(self.index, classes="sources")

    def on_mount(self) -> None:
        self.refresh_turn()

    # --- updates while streaming
    def append(self, piece: str) -> None:
        self.turn.text += piece
        self._render_text()

    def finish(self, answer: Answer) -> None:
        self.turn.answer = answer
        self.turn.text = answer.text
        self.turn.hits = ()
        if self.turn.state == "running":
            self.turn.state = "done"
        self.refresh_turn()

    def stop(self, state: str, error: str = "") -> None:
        self.turn.state = state  # type: ignore[assignment]
        self.turn.error = error
        self.refresh_turn()

    # --- rendering
    def refresh_turn(self) -> None:
        self._render_text()
        self._render_note()
        self._render_sources()

    def _render_text(self) -> None:
        answer = self.query_one(".answer", Static)
        if self.turn.text:
            a = self.turn.answer
            weak = a.weak_sentences(self.app.settings.weak_support) if a is not None else ()
            answer.update(answer_markup(inert(self.turn.text), self.index, tuple(inert(w) for w in weak)))
        elif self.turn.state == "running":
            answer.update(Content.styled("…", "dim"))
        else:
            answer.update(Content.styled("(no answer)", "dim"))

    def _render_note(self) -> None:
        note = self.query_one(".note", Static)
        t, a = self.turn, self.turn.answer
        text = ""
        if t.state == "cancelled":
            text = "■ cancelled: partial answer"
        elif t.state == "failed":
            text = f"✗ failed: {t.error}"
        elif a is not None and a.partial:
            text = "■ partial answer: generation stopped early"
        elif a is not None and a.abstained:
            reason = a.settings.get("abstain_reason", "")
            text = f"∅ the papers do not answer this{f' ({reason})' if reason else ''}"
        elif a is not None:
            took = a.timings.get("total_s") or sum(v for k, v in a.timings.items() if k.endswith("_s") and k != "first_token_s")
            n = len(a.citations)
            text = f"{n} source{'' if n == 1 else 's'} · {a.model or 'model'}" + (f" · {took:.1f} s" if took else "")
            weak = len(a.weak_sentences(self.app.settings.weak_support))
            text += f" · {weak} weakly supported (underlined)" if weak else ""
            text += " · quoted: no generated sentence passed the check" if a.extractive else ""
        note.update(Content(inert(text)))
        note.set_class(t.state in ("cancelled", "failed") or bool(a and a.partial), "-warning")
        note.display = bool(text)

    def _render_sources(self) -> None:
        sources = self.query_one(SourcesList)
        sources.clear_options()
        a = self.turn.answer
        if a is not None and a.citations:
            for c in a.citations:
                pages = page_span(c.page_start, c.page_end)
                section = f" · {c.section}" if c.section else ""
                sources.add_option(Option(Content.assemble((f"[{c.n}] ", "bold $accent"), inert(c.title or c.arxiv_id),
                                                           (inert(f"  {paper_ref(c.arxiv_id)}{section} · {pages}"), "dim")),
                                          id=str(c.n)))
        sources.display = sources.option_count > 0
