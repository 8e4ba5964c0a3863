"""A scripted stand-in for assistant.api.Assistant: the same public methods, deterministic events.

It returns real typed records (PaperRecord, Hit, Answer with Citations) so the TUI renders exactly
what it would for the real engine; only the work behind them is scripted.
"""
from __future__ import annotations

import asyncio
import re
from typing import Sequence

from foundation.config import Settings
from foundation.types import (Answer, AskEvent, Chunk, Citation, Hit, IngestResult, Paper, PaperRecord,
                             PaperStatus, ProgressEvent)

PAPERS = [
    Paper(arxiv_id="1706.03762", version=7, title="Attention Is All You Need",
          authors=("Ashish Vaswani", "Noam Shazeer", "Niki Parmar"), year=2017),
    Paper(arxiv_id="1810.04805", version=2, title="BERT: Pre-training of Deep Bidirectional Transformers for "
          "Language Understanding", authors=("Jacob Devlin", "Ming-Wei Chang"), year=2018),
    Paper(arxiv_id="1907.11692", version=1, title="RoBERTa: A Robustly Optimized BERT Pretraining Approach",
          authors=("Yinhan Liu", "Myle Ott"), year=2019),
    Paper(arxiv_id="2005.11401", version=4, title="Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks",
          authors=("Patrick Lewis", "Ethan Perez"), year=2020),
]


def chunk(arxiv_id: str, seq: int, section: str, page: int, text: str) -> Chunk:
    return Chunk(id=f"{arxiv_id}-c{seq}", arxiv_id=arxiv_id, version=1, section=section, page_start=page,
                 page_end=page, char_start=seq * 1000, char_end=seq * 1000 + len(text), text=text)


CHUNKS = {
    c.id: c for c in [
        chunk("1706.03762", 10, "3.2.1 Scaled Dot-Product Attention", 4,
              "We call our particular attention Scaled Dot-Product Attention. The input consists of queries and keys "
              "of dimension d_k, and values of dimension d_v."),
        chunk("1706.03762", 11, "3.2.1 Scaled Dot-Product Attention", 4,
              "We suspect that for large values of d_k, the dot products grow large in magnitude, pushing the softmax "
              "function into regions where it has extremely small gradients. To counteract this effect, we scale the "
              "dot products by 1/sqrt(d_k)."),
        chunk("1706.03762", 12, "3.2.2 Multi-Head Attention", 4,
              "Instead of performing a single attention function with d_model-dimensional keys, values and queries, "
              "we found it beneficial to linearly project the queries, keys and values h times."),
        chunk("1810.04805", 5, "3.1 Pre-training BERT", 4,
              "We pre-train BERT using two unsupervised tasks: masked LM and next sentence prediction."),
    ]
}
PAPER_OF = {p.arxiv_id: p for p in PAPERS}

ANSWER_TOKENS = ["The dot products ", "grow large for large d_k, ", "pushing the softmax into regions ",
                 "with tiny gradients [1]. ", "Scaling by 1/sqrt(d_k) ", "counteracts this [1]."]
ANSWER_TEXT = ("The dot products grow large for large d_k, pushing the softmax into regions with tiny gradients [1]. "
               "Scaling by 1/sqrt(d_k) counteracts this [1].")


def hits_for(ids: Sequence[str]) -> tuple[Hit, ...]:
    return tuple(Hit(chunk=CHUNKS[cid], score=0.8 - 0.05 * i, rank=i + 1, source="dense",
                     paper=PAPER_OF[CHUNKS[cid].arxiv_id]) for i, cid in enumerate(ids))


def scripted_answer(question: str) -> Answer:
    hits = hits_for(["1706.03762-c11", "1706.03762-c10", "1810.04805-c5"])
    c = hits[0].chunk
    citation = Citation(n=1, chunk_id=c.id, arxiv_id=c.arxiv_id, title=hits[0].paper_title, section=c.section,
                        page_start=c.page_start, page_end=c.page_end,
                        quote="To counteract this effect, we scale the dot products by 1/sqrt(d_k).",
                        authors=hits[0].paper.authors, year=hits[0].paper.year)
    return Answer(question=question, text=ANSWER_TEXT, citations=(citation,), passages=hits, model="scripted",
                  timings={"retrieve_s": 0.1, "generate_s": 1.2})


class ScriptedAssistant:
    """Assistant's public surface. `gate`: when set, the answer stream pauses after `pause_after` tokens
    until the gate opens (for cancel tests). `fail`: aask_stream raises this after the search event."""

    def __init__(self, settings: Settings, papers: Sequence[Paper] = PAPERS, *, pause_after: int | None = None,
                 fail: Exception | None = None):
        self.settings = settings
        self.records = [PaperRecord(paper=p, status=PaperStatus.ok, n_chunks=40 + i) for i, p in enumerate(papers)]
        self.pause_after = pause_after
        self.gate = asyncio.Event()
        self.fail = fail
        self.questions: list[tuple[str, tuple[str, ...] | None, str | None]] = []
        self.tokens_sent = 0
        self.closed = False

    def papers(self) -> list[PaperRecord]:
        return list(self.records)

    def remove(self, arxiv_id: str) -> bool:
        before = len(self.records)
        self.records = [r for r in self.records if r.paper.arxiv_id != arxiv_id]
        return len(self.records) < before

    def neighbours(self, chunk_id: str, before: int = 1, after: int = 1) -> list[Chunk]:
        c = CHUNKS[chunk_id]
        seq = int(chunk_id.rsplit("c", 1)[1])
        ids = [f"{c.arxiv_id}-c{s}" for s in range(seq - before, seq + after + 1)]
        return [CHUNKS[i] for i in ids if i in CHUNKS]

    def modes(self) -> list[str]:
        return ["dense", "bm25", "hybrid", "collapsed"]

    def tree_status(self):
        from types import SimpleNamespace

        return SimpleNamespace(with_tree=["1706.03762"])

    def build_tree(self, papers=None, progress=lambda e: None):
        from types import SimpleNamespace

        return SimpleNamespace(papers_built=list(papers or []), papers_failed={})

    def summarize(self, papers=None, topic=None, length="medium", style="summary", progress=lambda e: None):
        """A draft citing a leaf passage that is not among its sources (those are tree summaries)."""
        from assistant.summaries.draft import Draft

        progress(ProgressEvent(stage="generate", message="writing the draft"))
        leaf = CHUNKS["1706.03762-c12"]
        root = Chunk(id="1706.03762-root", arxiv_id="1706.03762", version=7, page_start=1, page_end=15, char_start=0,
                     char_end=80, text="The paper proposes the Transformer, built on attention alone.", level=2)
        citation = Citation(n=1, chunk_id=leaf.id, arxiv_id=leaf.arxiv_id, title=PAPER_OF[leaf.arxiv_id].title,
                            section=leaf.section, page_start=4, page_end=4, quote="we found it beneficial to linearly "
                            "project the queries, keys and values h times.")
        return Draft(subject="Attention Is All You Need", style=style, length_words=120,
                     text="The Transformer projects queries, keys and values h times [1].", citations=(citation,),
                     sources=(Hit(chunk=root, score=1.0, source="raptor", paper=PAPER_OF["1706.03762"]),),
                     tree_papers=("1706.03762",), model="scripted")

    async def aingest(self, items, progress=lambda e: None) -> list[IngestResult]:
        items = [items] if isinstance(items, str) else list(items)
        results = []
        progress(ProgressEvent(stage="fetch", message=f"{len(items)} papers to ingest", done=0, total=len(items)))
        for i, item in enumerate(items):
            await asyncio.sleep(0)
            if not re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?", item):
                results.append(IngestResult(arxiv_id=item, status=PaperStatus.failed,
                                            reason=f"not an arXiv id or URL: {item!r}; and no such file"))
                continue
            arxiv_id = item.split("v")[0]
            paper = Paper(arxiv_id=arxiv_id, version=1, title=f"Paper {arxiv_id}", authors=("A. Author",), year=2024)
            self.records.append(PaperRecord(paper=paper, status=PaperStatus.ok, n_chunks=12))
            progress(ProgressEvent(stage="index", message=arxiv_id, done=i + 1, total=len(items), item=arxiv_id))
            results.append(IngestResult(arxiv_id=arxiv_id, status=PaperStatus.ok, n_chunks=12))
        return results

    async def asearch(self, query: str, k: int | None = None, mode: str | None = None,
                      papers: Sequence[str] | None = None) -> list[Hit]:
        return list(hits_for(["1706.03762-c11"]))[: k or 10]

    async def aask_stream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None):
        self.questions.append((question, tuple(papers) if papers else None, mode))
        yield AskEvent(kind="plan", text="planning: 1 sub-question")
        yield AskEvent(kind="search", text=f"searching ({mode or 'dense'})")
        if self.fail is not None:
            raise self.fail
        answer = scripted_answer(question)
        yield AskEvent(kind="passages", text=f"reading {len(answer.passages)} passages", hits=answer.passages)
        for i, piece in enumerate(ANSWER_TOKENS):
            if self.pause_after is not None and i == self.pause_after:
                await self.gate.wait()
            self.tokens_sent += 1
            yield AskEvent(kind="token", text=piece)
            await asyncio.sleep(0)
        yield AskEvent(kind="verify", text="checking citations")
        yield AskEvent(kind="answer", answer=answer)

    def close(self) -> None:
        self.closed = True
