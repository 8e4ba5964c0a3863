"""The side panel: the passage behind [n], with the supporting sentence highlighted, and its neighbours."""
from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from foundation.terminal import inert
from foundation.types import Chunk, Citation, Hit, is_local_id, paper_ref


def _norm(text: str) -> str:
    return " ".join(text.split())


def quote_span(passage: str, quote: str) -> tuple[int, int] | None:
    """Where the quote lies in the (whitespace-normalised) passage, or None."""
    quote = _norm(quote)
    if not quote:
        return None
    start = passage.find(quote)
    if start < 0:  # quotes are cut at sentence ends; try the longest head that still matches
        words = quote.split()
        for n in range(len(words) - 1, 3, -1):
            head = " ".join(words[:n])
            start = passage.find(head)
            if start >= 0:
                return start, start + len(head)
        return None
    return start, start + len(quote)


def pages(chunk: Chunk) -> str:
    return chunk.pages_label


class CitationPanel(VerticalScroll, can_focus=True):
    """Hidden until a citation is opened. n loads the neighbouring passages; o opens the PDF at the cited page;
    esc closes (from the screen)."""

    BINDINGS = [Binding("n", "neighbours", "Neighbouring passages"), Binding("o", "open_pdf", "Open the PDF"),
                Binding("c", "close_panel", "Close panel")]

    class NeighboursWanted(Message):
        def __init__(self, chunk_id: str) -> None:
            super().__init__()
            self.chunk_id = chunk_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hit: Hit | None = None
        self.citation: Citation | None = None
        self.n = 0

    def compose(self):
        yield Static(id="cite-title")
        yield Static(id="cite-meta")
        yield Static(id="cite-before", classes="neighbour")
        yield Static(id="cite-passage")
        yield Static(id="cite-after", classes="neighbour")
        yield Static(Content("n  neighbouring passages · o  open the PDF at this page · esc  close"), id="cite-hint")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self, n: int, hit: Hit, citation: Citation | None) -> None:
        self.n, self.hit, self.citation = n, hit, citation
        chunk, paper = hit.chunk, hit.paper
        title = (citation.title if citation and citation.title else hit.paper_title) or chunk.arxiv_id
        self.query_one("#cite-title", Static).update(Content.assemble((f"[{n}] ", "bold $accent"), (inert(title), "bold")))
        version = f"v{chunk.version}" if chunk.version else ""
        who = ""
        if paper and paper.authors:
            who = paper.authors[0] + (" et al." if len(paper.authors) > 1 else "")
        year = str(paper.year) if paper and paper.year else ""
        ref = paper_ref(chunk.arxiv_id) + ("" if is_local_id(chunk.arxiv_id) else version)
        key = citation.citation_key if citation and citation.citation_key else (paper.citation_key if paper else "")
        meta = " · ".join(x for x in (ref, key, who, year) if x)
        where = " · ".join(x for x in (f"§ {chunk.section}" if chunk.section else "", pages(chunk),
                                       f"score {hit.score:.3f} ({hit.source})") if x)
        path = self.pdf_path
        file = f"\n{path} · page {self.page}" if path else ""  # where the passage is, for `o` and for the reader
        self.query_one("#cite-meta", Static).update(Content(inert(f"{meta}\n{where}{file}")))
        self.query_one("#cite-passage", Static).update(self._passage(chunk, citation))
        for side in ("#cite-before", "#cite-after"):
            self.query_one(side, Static).display = False
        self.add_class("-open")
        self.scroll_home(animate=False)

    @property
    def pdf_path(self) -> str | None:
        """The open passage's PDF on disk (the citation carries it; a bare passage's paper may)."""
        if self.citation is not None and self.citation.pdf_path:
            return self.citation.pdf_path
        return self.hit.paper.pdf_path if self.hit is not None and self.hit.paper is not None else None

    @property
    def page(self) -> int:
        """The page the passage starts on: the one the viewer opens."""
        if self.citation is not None:
            return self.citation.page_start
        return self.hit.chunk.page_start if self.hit is not None else 1

    def _passage(self, chunk: Chunk, citation: Citation | None) -> Content:
        text = inert(_norm(chunk.text))
        content = Content(text)
        span = quote_span(text, inert(citation.quote)) if citation else None
        if span:
            content = content.stylize("reverse $warning", *span)
        return content

    def show_neighbours(self, chunk_id: str, chunks: list[Chunk]) -> None:
        if self.hit is None or chunk_id != self.hit.chunk.id:
            return  # the reader moved on to another citation
        ids = [c.id for c in chunks]
        here = ids.index(chunk_id) if chunk_id in ids else -1
        before = chunks[:here] if here >= 0 else []
        after = chunks[here + 1:] if here >= 0 else []
        for widget_id, part, label in (("#cite-before", before, "previous"), ("#cite-after", after, "next")):
            widget = self.query_one(widget_id, Static)
            if part:
                body = "\n\n".join(f"— {label} passage · {c.section or '-'} · {c.pages_label} —\n{_norm(c.text)}" for c in part)
            else:
                body = f"— no {label} passage in this paper —"
            widget.update(Content(inert(body)))
            widget.display = True

    def close(self) -> None:
        self.remove_class("-open")
        self.hit = self.citation = None

    def action_neighbours(self) -> None:
        if self.hit is not None:
            self.post_message(self.NeighboursWanted(self.hit.chunk.id))

    def action_open_pdf(self) -> None:
        if self.hit is not None:
            self.app.open_pdf(self.pdf_path, self.page)  # type: ignore[attr-defined]

    def action_close_panel(self) -> None:
        self.close()
        self.screen.query_one("#question").focus()
