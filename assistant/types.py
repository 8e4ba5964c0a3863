"""Typed records that flow through the pipeline: Paper -> Chunk -> Hit -> Citation -> Answer."""
from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Paper(Frozen):
    arxiv_id: str = Field(description="Canonical arXiv id without version, e.g. 1706.03762 or hep-th/9901001")
    version: int | None = Field(default=None, description="arXiv version number when known")
    title: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    abstract: str = ""
    pdf_path: str | None = Field(default=None, description="Where the PDF lies on disk")

    @property
    def url(self) -> str:
        v = f"v{self.version}" if self.version else ""
        return f"https://arxiv.org/abs/{self.arxiv_id}{v}"

    @property
    def short_label(self) -> str:
        first = self.authors[0].split()[-1] if self.authors else "Anon"
        etal = " et al." if len(self.authors) > 1 else ""
        return f"{first}{etal} {self.year or ''}".strip()


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

    def page_at(self, offset: int) -> int:
        """1-based page number of the character at offset."""
        page = 1
        for i, start in enumerate(self.page_offsets):
            if start <= offset:
                page = i + 1
            else:
                break
        return page


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

    @staticmethod
    def make_id(arxiv_id: str, version: int | None, page_start: int, page_end: int, char_start: int) -> str:
        """Stable id: the same paper, version and offsets always give the same id."""
        key = f"{arxiv_id}|v{version or 0}|p{page_start}-{page_end}|c{char_start}"
        return f"{arxiv_id.replace('/', '_')}v{version or 0}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    @property
    def pages_label(self) -> str:
        return f"p. {self.page_start}" if self.page_start == self.page_end else f"pp. {self.page_start}-{self.page_end}"


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

    @property
    def label(self) -> str:
        pages = f"p. {self.page_start}" if self.page_start == self.page_end else f"pp. {self.page_start}-{self.page_end}"
        sec = f", {self.section}" if self.section else ""
        return f"[{self.n}] {self.title or self.arxiv_id} (arXiv:{self.arxiv_id}){sec}, {pages}"


class Verdict(Frozen):
    sentence: str
    citations: tuple[int, ...] = ()
    supported: bool | None = Field(default=None, description="None when not checked")
    note: str = ""


class Answer(Frozen):
    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    passages: tuple[Hit, ...] = Field(default=(), description="Passages shown to the model, numbered from 1 in order")
    abstained: bool = False
    model: str = ""
    prompt: str = Field(default="", description="Name of the prompt file used")
    queries: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    settings: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    partial: bool = Field(default=False, description="True when generation stopped early (server died, cancelled)")

    def to_markdown(self) -> str:
        from assistant.cite import answer_to_markdown

        return answer_to_markdown(self)


class PaperStatus(str, Enum):
    pending = "pending"
    ok = "ok"
    failed = "failed"


class PaperRecord(Frozen):
    """A paper as the store knows it: metadata plus ingest status."""

    paper: Paper
    status: PaperStatus
    reason: str = ""
    n_chunks: int = 0
    updated_at: float = 0.0


class IngestResult(Frozen):
    arxiv_id: str
    status: PaperStatus
    reason: str = ""
    n_chunks: int = 0
    seconds: float = 0.0
    skipped: bool = Field(default=False, description="Already ingested with these settings; nothing redone")


class ProgressEvent(Frozen):
    """Emitted by long work so front ends can show progress without the core knowing them."""

    stage: Literal["fetch", "parse", "chunk", "embed", "index", "search", "generate", "cite", "server", "build", "eval"]
    message: str = ""
    done: int = 0
    total: int | None = None
    item: str = ""


class AskEvent(Frozen):
    """One step of answering, streamed to front ends: what the engine is doing, tokens, the final answer."""

    kind: Literal["plan", "search", "passages", "token", "verify", "status", "answer", "error"]
    text: str = ""
    hits: tuple[Hit, ...] = ()
    answer: Answer | None = None
