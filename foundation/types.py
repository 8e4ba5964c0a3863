"""Typed records that flow through the pipeline: Paper -> Chunk -> Hit -> Citation -> Answer."""
from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# A paper that came in as a PDF from disk (a file, a folder, a BibTeX or Zotero library) has no arXiv id of
# its own: its id is this prefix and the first 12 hex digits of its first content's sha256. It never looks like
# an arXiv id (no digits-dot-digits, no slash), stays the same when the file is edited (a new version) and is
# a safe file-name stem, like every id.
LOCAL_ID_PREFIX = "pdf-"


def is_local_id(paper_id: str) -> bool:
    """True for the id of a paper read from a PDF on disk, False for an arXiv id."""
    return paper_id.startswith(LOCAL_ID_PREFIX)


class Paper(Frozen):
    arxiv_id: str = Field(description="The paper's id: a canonical arXiv id without version (1706.03762, "
                          "hep-th/9901001), or for a PDF from disk pdf-<12 hex> (is_local_id); every index keys by it")
    version: int | None = Field(default=None, description="arXiv version number when known; for a PDF from disk the "
                                "n-th content its file was ingested with (an edited PDF is a new version)")
    title: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    abstract: str = ""
    pdf_path: str | None = Field(default=None, description="Where the PDF lies on disk")
    doi: str = Field(default="", description="DOI, from the PDF's first page or metadata or the user's library")
    citation_key: str = Field(default="", description="The key the user's BibTeX or Zotero library gives the paper; "
                              "BibTeX exports reuse it")
    eprint: str = Field(default="", description="arXiv id printed on a PDF from disk or named by its library entry")
    venue: str = Field(default="", description="Journal or proceedings, from the user's library")
    origin: Literal["arxiv", "pdf", "bibtex", "zotero"] = Field(default="arxiv", description="How it came in")
    content_hash: str = Field(default="", description="sha256 of the PDF the current version was read from")

    @property
    def is_local(self) -> bool:
        return is_local_id(self.arxiv_id)

    @property
    def url(self) -> str:
        if self.is_local:
            if self.doi:
                return f"https://doi.org/{self.doi}"
            return f"https://arxiv.org/abs/{self.eprint}" if self.eprint else ""
        v = f"v{self.version}" if self.version else ""
        return f"https://arxiv.org/abs/{self.arxiv_id}{v}"


class Section(Frozen):
    title: str
    page_start: int
    char_start: int = Field(description="Offset into the paper's cleaned full text")


class ParsedPaper(Frozen):
    """Cleaned full text of one paper; page_offsets[i] is where page i+1 starts in text."""

    arxiv_id: str
    version: int | None = None
    text: str
    page_offsets: tuple[int, ...]
    sections: tuple[Section, ...]
    references_start: int | None = Field(default=None, description="Offset where the references begin; text after it is not indexed")
    dropped_pages: tuple[str, ...] = Field(default=(), description="Pages left out (unreadable, a zlib bomb, far too much text), each named with why")

    def page_at(self, offset: int) -> int:
        """1-based page number of the character at offset."""
        page = 1
        for i, start in enumerate(self.page_offsets):
            if start <= offset:
                page = i + 1
            else:
                break
        return page


# What parse + chunk make of a PDF. A paper indexed by an older version is ingested again by the next ingest
# that names it (its passages replaced, never mixed): 2 added table rows as passages of their own and read
# ligature glyphs as letters.
PASSAGES_VERSION = 2


class Chunk(Frozen):
    id: str
    arxiv_id: str
    version: int | None = None
    section: str = ""
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    text: str
    n_tokens: int = 0
    level: int = Field(default=0, description="0 for a leaf passage; >0 for a RAPTOR summary node")
    children: tuple[str, ...] = Field(default=(), description="Child chunk ids of a summary node")
    kind: Literal["text", "table"] = Field(default="text", description="text: a stretch of the paper's running "
                                           "text; table: rows of one table (section 'Table N'), one "
                                           "self-contained row a line")

    @staticmethod
    def make_id(arxiv_id: str, version: int | None, page_start: int, page_end: int, char_start: int,
                kind: str = "text") -> str:
        """Stable id: the same paper, version, offsets and kind always give the same id (a text chunk's id is
        what it was before chunks had kinds)."""
        key = f"{arxiv_id}|v{version or 0}|p{page_start}-{page_end}|c{char_start}" + ("" if kind == "text" else f"|{kind}")
        return f"{arxiv_id.replace('/', '_')}v{version or 0}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    @property
    def pages_label(self) -> str:
        return page_span(self.page_start, self.page_end)


class Hit(Frozen):
    chunk: Chunk
    score: float
    rank: int = 0
    source: str = Field(default="dense", description="Which retriever produced it: dense, colbert, bm25, hybrid, raptor")
    paper: Paper | None = Field(default=None, description="Metadata of the chunk's paper, when known")

    @property
    def paper_title(self) -> str:
        return self.paper.title if self.paper else ""


class Citation(Frozen):
    n: int = Field(description="The [n] marker used in the answer text")
    chunk_id: str
    arxiv_id: str
    title: str = ""
    section: str = ""
    page_start: int
    page_end: int
    quote: str = Field(default="", description="The passage sentence that best supports the citing sentence")
    authors: tuple[str, ...] = ()
    year: int | None = None
    pdf_path: str | None = Field(default=None, description="The paper's PDF on disk: page_start is the page to open")
    doi: str = ""
    citation_key: str = Field(default="", description="The user's own BibTeX key for the paper, when known")
    eprint: str = Field(default="", description="arXiv id of a paper read from disk, when known")
    venue: str = ""

    @property
    def label(self) -> str:
        return source_label(self.n, self.title, self.arxiv_id, self.section, self.page_start, self.page_end)

    def with_paper(self, paper: Paper | None) -> "Citation":
        """The citation with its paper's file, DOI and library key (and title, authors, year where it has none)."""
        if paper is None:
            return self
        return self.model_copy(update={
            "pdf_path": paper.pdf_path, "doi": paper.doi, "citation_key": paper.citation_key,
            "eprint": paper.eprint, "venue": paper.venue, "title": self.title or paper.title,
            "authors": self.authors or paper.authors, "year": self.year or paper.year})


def with_paper_details(answer: "Answer", papers: dict[str, Paper]) -> "Answer":
    """The answer with every citation's PDF path, DOI and citation key filled in from its paper."""
    if not answer.citations:
        return answer
    return answer.model_copy(update={"citations": tuple(c.with_paper(papers.get(c.arxiv_id))
                                                         for c in answer.citations)})


class Quote(Frozen):
    """Evidence shown to the model: a sentence (or a few adjacent ones) of a retrieved passage, numbered as
    the answer cites it."""

    n: int = Field(description="The [n] marker that cites it")
    passage: int = Field(description="1-based index of its passage in Answer.passages")
    chunk_id: str
    arxiv_id: str
    title: str = ""
    section: str = ""
    page_start: int
    page_end: int
    start: int = Field(description="Offset of the quote in its passage's text")
    end: int
    text: str = Field(description="The quoted sentence(s), white space folded")
    score: float = Field(default=0.0, description="How strongly it bears on the question (evidence selection)")

    @property
    def label(self) -> str:
        return source_label(self.n, self.title, self.arxiv_id, self.section, self.page_start, self.page_end)


class Verdict(Frozen):
    """One answer sentence as checked against the quote(s) it cites."""

    sentence: str
    citations: tuple[int, ...] = ()
    supported: bool | None = Field(default=None, description="None when not checked")
    support: float | None = Field(default=None, description="Support score in [0, 1] (the checker's P(supported))")
    note: str = ""


class Answer(Frozen):
    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    passages: tuple[Hit, ...] = Field(default=(), description="Passages retrieved for the question, best first")
    quotes: tuple[Quote, ...] = Field(default=(), description="Evidence shown to the model, numbered from 1 in the "
                                      "order the answer shows them; [n] markers and citations point at these")
    direct_answer: str = Field(default="", description="The one-sentence answer above the quotes, with its markers: "
                               "written by the model from its picks and shown only when the support check passed")
    abstained: bool = False
    abstain_reason: str = ""
    extractive: bool = Field(default=False, description="True when the answer is the best quotes verbatim "
                             "(no generated sentence survived verification)")
    answerability: float | None = Field(default=None, description="Calibrated P(the papers answer the question)")
    error: str = Field(default="", description="What failed, when the answer is partial or missing")
    model: str = ""
    prompt: str = Field(default="", description="Name of the prompt file used")
    queries: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    settings: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    partial: bool = Field(default=False, description="True when generation stopped early (server died, cancelled)")

    def weak_sentences(self, below: float) -> tuple[str, ...]:
        """Sentences of the text the checker did not support, or supported with a score under `below`."""
        return tuple(v.sentence for v in self.verdicts
                     if v.sentence and (v.supported is False or (v.support is not None and v.support < below))
                     and _shown_in(v.sentence, self.text))

    @property
    def sources(self) -> tuple[str, ...]:
        """The texts that [n] markers point at, numbered from 1."""
        return tuple(q.text for q in self.quotes) if self.quotes else tuple(h.chunk.text for h in self.passages)

    def to_markdown(self) -> str:
        return answer_to_markdown(self)


class PaperStatus(str, Enum):
    pending = "pending"
    ok = "ok"
    failed = "failed"


class _IngestStatus(Frozen):
    status: PaperStatus
    reason: str = Field(default="", description="Why the paper failed, in words a user can act on; for an ok paper, what was left out of it (pages)")
    n_chunks: int = 0


class PaperRecord(_IngestStatus):
    """A paper as the store knows it: metadata plus ingest status."""

    paper: Paper
    updated_at: float = 0.0
    passages: int = Field(default=PASSAGES_VERSION, description="PASSAGES_VERSION of the code that made its passages")


class IngestResult(_IngestStatus):
    """What one ingest did with one paper (or one unreadable reading-list item)."""

    arxiv_id: str
    seconds: float = 0.0
    skipped: bool = Field(default=False, description="Already ingested with these settings; nothing redone")
    kind: Literal["paper", "input"] = Field(default="paper", description="input: an item that named no paper (unreadable file, no ids in it, not an id, a library entry with no PDF and no arXiv id)")
    item: str = Field(default="", description="The file or library entry it came from (PDFs and libraries)")
    title: str = ""
    note: str = Field(default="", description="What was done besides indexing: a duplicate of another file, "
                      "library metadata added to a paper already indexed")


class ProgressEvent(Frozen):
    """Emitted by long work so front ends can show progress without the core knowing them."""

    stage: Literal["fetch", "parse", "chunk", "embed", "index", "search", "generate", "cite", "server", "build", "eval"]
    message: str = ""
    done: int = 0
    total: int | None = None
    item: str = ""


class AskEvent(Frozen):
    """One step of answering, streamed to front ends: what the engine is doing, tokens, the final answer."""

    kind: Literal["plan", "search", "passages", "quotes", "token", "verify", "status", "answer", "error"]
    text: str = ""
    hits: tuple[Hit, ...] = ()
    quotes: tuple[Quote, ...] = ()
    answer: Answer | None = None


# --- Markdown and BibTeX for answers and drafts

def answer_to_markdown(answer: Answer) -> str:
    """Answer text, a references list, and BibTeX entries for the cited papers."""
    lines = [f"**Q:** {answer.question}", "", answer.text, ""]
    if answer.citations:
        lines.append("### References")
        for c in answer.citations:
            lines.append(f"- {c.label}" + (f"\n  > {c.quote}" if c.quote else ""))
        lines += ["", "### BibTeX", "```bibtex"]
        seen = set()
        for c in answer.citations:
            if c.arxiv_id in seen:
                continue
            seen.add(c.arxiv_id)
            lines.append(bibtex_entry(c))
        lines.append("```")
    return "\n".join(lines).rstrip() + "\n"


def bibtex_entry(c: Citation) -> str:
    """One BibTeX entry for a cited paper, under the user's own key when their library gave one. A PDF from
    disk says what is known: @article with its DOI (and journal), else @misc with title, authors and year."""
    local = is_local_id(c.arxiv_id)
    surname = re.sub(r"[^A-Za-z]", "", c.authors[0].split()[-1]) if c.authors else ("anon" if local else "arxiv")
    if c.citation_key:
        key = c.citation_key
    elif local:
        word = next((w for w in re.findall(r"[A-Za-z]+", c.title) if len(w) > 3), "")
        key = f"{surname.lower()}{c.year or ''}{word.lower()}" or c.arxiv_id
    else:
        key = f"{surname.lower()}{c.year or ''}_{re.sub(r'[^0-9]', '', c.arxiv_id)}"
    fields = [f"  title = {{{{{c.title or ('Untitled' if local else c.arxiv_id)}}}}}"]
    if c.authors:
        fields.append(f"  author = {{{' and '.join(c.authors)}}}")
    if c.year:
        fields.append(f"  year = {{{c.year}}}")
    eprint = c.eprint if local else c.arxiv_id
    article = bool(c.venue) or (bool(c.doi) and not eprint)  # a preprint's DOI alone does not make an article
    if article and c.venue:
        fields.append(f"  journal = {{{c.venue}}}")
    if c.doi:
        fields.append(f"  doi = {{{c.doi}}}")
    if eprint:
        fields += [f"  eprint = {{{eprint}}}", "  archivePrefix = {arXiv}", f"  url = {{https://arxiv.org/abs/{eprint}}}"]
    return ("@article{" if article else "@misc{") + key + ",\n" + ",\n".join(fields) + "\n}"


def _shown_in(sentence: str, text: str) -> bool:
    """The text holds the sentence (its markers go before the final stop, so match without it)."""
    return sentence.rstrip(".!?").strip() in text


def source_label(n: int, title: str, arxiv_id: str, section: str, page_start: int, page_end: int) -> str:
    """"[n] Title (arXiv:id), section, p. 4" as references and source lists show a citation or a quote
    ("[n] Title (PDF), ..." for a paper read from disk)."""
    sec = f", {section}" if section else ""
    return f"[{n}] {title or arxiv_id} ({paper_ref(arxiv_id)}){sec}, {page_span(page_start, page_end)}"


def paper_ref(paper_id: str) -> str:
    """"arXiv:1706.03762", or "PDF" for a paper read from disk (its id means nothing to a reader)."""
    return "PDF" if is_local_id(paper_id) else f"arXiv:{paper_id}"


def page_span(start: int, end: int) -> str:
    """"p. 4" or "pp. 4-5", as every citation, passage and source list shows pages."""
    return f"p. {start}" if start == end else f"pp. {start}-{end}"
