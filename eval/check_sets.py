"""Check the hand-written question sets against the parsed corpus; exit 1 on any failure.

    python -m eval.check_sets [--papers ../shared/papers] [--cache DIR] [--show-near] [FILE ...]

Default files: eval/one_paper.jsonl, eval/stated.jsonl, eval/unstated.jsonl (README.md beside this file).

- Every evidence string (``normalize_text``, whitespace collapsed) is a substring of its paper's text as
  ``ingest.parse.parse_pdf`` gives it, starting on the recorded page; every number in a gold answer is in
  its evidence.
- one_paper: answerable questions are kind why/how; no question holds its paper's arXiv id, title, subtitle
  or first author's surname; unanswerable ones name the paper they ask about in ``about``.
- stated / unstated: ``entity`` (or one of ``aliases``) occurs, case-sensitively and as a whole name, in
  exactly the papers listed in ``mentions``; a stated question's paper is among them.
- unstated: ``near_hits`` equals the number of places where the entity has a number and the asked ``unit``
  (a regex) within NEAR_CHARS characters. Each was read by hand when the set was made and none states the
  figure; a re-parse that changes the count fails here, so the new passages get read (--show-near prints them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from eval.datasets import QAItem, load_dataset
import ingest.parse
from ingest.parse import normalize_text, parse_pdf

HERE = Path(__file__).parent
DEFAULT_FILES = (HERE / "one_paper.jsonl", HERE / "stated.jsonl", HERE / "unstated.jsonl")
NEAR_CHARS = 200
ANSWERABLE_ONE_PAPER_KINDS = {"why", "how"}
# Digit groups split by a thousands comma (and pypdf's stray space: "10, 000") read as one number.
THOUSANDS = re.compile(r"(?<=\d),\s?(?=\d{3}(?!\d))")
# A number, not a digit inside a name (CO2, A100, GPT-4).
NUMBER = re.compile(r"(?<![A-Za-z0-9.-])\d+(?:\.\d+)?")
CODE_FILES = tuple(Path(ingest.parse.__file__).parent / f for f in ("parse.py", "glyphs.py"))


def squash(s: str) -> str:
    return " ".join(s.split())


def numbers(s: str) -> set[str]:
    return set(NUMBER.findall(THOUSANDS.sub("", s)))


def name_pattern(names: list[str]) -> re.Pattern:
    """A name as a whole token: "GPT-3" matches "GPT-3 175B" and "GPT-3-175B", not "GPT-3.5" or "GPT-30"."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(r"(?<![A-Za-z0-9])(?:" + alternatives + r")(?![A-Za-z0-9]|\.[0-9])")


@dataclass(frozen=True)
class PaperText:
    arxiv_id: str
    title: str
    authors: tuple[str, ...]
    pages: tuple[str, ...]  # whitespace-collapsed page texts

    @cached_property
    def text(self) -> str:
        return " ".join(self.pages)

    @cached_property
    def page_starts(self) -> list[int]:
        starts, pos = [], 0
        for page in self.pages:
            starts.append(pos)
            pos += len(page) + 1
        return starts

    def page_of(self, offset: int) -> int:
        return sum(1 for start in self.page_starts if start <= offset)


class Corpus:
    """The manifest's papers, parsed with the project's parser (cached by PDF and parser source)."""

    def __init__(self, papers_dir: Path, cache: Path | None = None):
        manifest = json.loads((papers_dir / "manifest.json").read_text(encoding="utf-8"))
        code_key = hashlib.sha256(b"".join(f.read_bytes() for f in CODE_FILES)).hexdigest()
        self.papers: dict[str, PaperText] = {}
        for entry in manifest:
            aid = entry["arxiv_id"]
            pages = self._pages(papers_dir / f"{aid}.pdf", aid, cache, code_key)
            self.papers[aid] = PaperText(aid, entry.get("title") or "", tuple(entry.get("authors") or ()), pages)

    @staticmethod
    def _pages(pdf: Path, aid: str, cache: Path | None, code_key: str) -> tuple[str, ...]:
        key = hashlib.sha256(pdf.read_bytes() + code_key.encode()).hexdigest()[:16]
        cached = cache / f"{aid}-{key}.json" if cache else None
        if cached and cached.exists():
            return tuple(json.loads(cached.read_text(encoding="utf-8")))
        parsed = parse_pdf(pdf, aid)
        bounds = list(parsed.page_offsets) + [len(parsed.text)]
        pages = tuple(squash(parsed.text[bounds[i]:bounds[i + 1]]) for i in range(len(parsed.page_offsets)))
        if cached:
            cache.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(pages), encoding="utf-8")
        return pages

    def mentions(self, names: list[str]) -> list[str]:
        pattern = name_pattern(names)
        return sorted(aid for aid, paper in self.papers.items() if pattern.search(paper.text))

    def near_hits(self, names: list[str], unit: str) -> list[tuple[str, str]]:
        """(arxiv id, window) for each mention with a digit and the unit within NEAR_CHARS characters."""
        pattern, unit_re = name_pattern(names), re.compile(unit, re.I)
        hits = []
        for aid, paper in sorted(self.papers.items()):
            for m in pattern.finditer(paper.text):
                window = paper.text[max(0, m.start() - NEAR_CHARS):m.end() + NEAR_CHARS]
                if unit_re.search(window) and re.search(r"\d", window):
                    hits.append((aid, window))
        return hits


class Checker:
    def __init__(self, corpus: Corpus, show_near: bool = False):
        self.corpus, self.show_near = corpus, show_near
        self.errors: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def check_file(self, path: Path) -> dict:
        items = load_dataset(path)  # format errors raise with file:line
        kind = path.stem
        for item in items:
            where = f"{path.name}:{item.id}"
            if item.answerable:
                self.check_evidence(item, where)
            else:
                self.check_unanswerable(item, where)
            if kind == "one_paper":
                self.check_one_paper(item, where)
            if kind in ("stated", "unstated"):
                self.check_entity(item, where, stated=kind == "stated")
        answerable = [i for i in items if i.answerable]
        papers = {i.arxiv_id for i in answerable} | {i.extra.get("about") for i in items if i.extra.get("about")}
        summary = {"file": path.name, "questions": len(items), "answerable": len(answerable),
                   "unanswerable": len(items) - len(answerable), "papers": len(papers - {None})}
        if kind in ("stated", "unstated"):
            summary["entities"] = len({i.extra.get("entity") for i in items})
            summary["papers_mentioning"] = len({aid for i in items for aid in i.extra.get("mentions", [])})
        return summary

    def check_evidence(self, item: QAItem, where: str) -> None:
        paper = self.corpus.papers.get(item.arxiv_id or "")
        if paper is None:
            return self.fail(where, f"unknown paper {item.arxiv_id!r}")
        if not item.answer or not item.evidence:
            return self.fail(where, "an answerable question needs an answer and evidence")
        if len(item.pages) != len(item.evidence):
            return self.fail(where, "pages and evidence differ in length")
        for evidence, page in zip(item.evidence, item.pages):
            needle = squash(normalize_text(evidence))
            at = paper.text.find(needle)
            if at < 0:
                self.fail(where, f"evidence not in {paper.arxiv_id}: {evidence[:70]!r}")
            elif paper.page_of(at) != page and needle not in paper.pages[page - 1]:
                self.fail(where, f"evidence is on page {paper.page_of(at)}, not {page}: {evidence[:50]!r}")
        missing = numbers(item.answer) - numbers(" ".join(normalize_text(e) for e in item.evidence))
        if missing:
            self.fail(where, f"answer numbers not in the evidence: {sorted(missing)}")

    def check_unanswerable(self, item: QAItem, where: str) -> None:
        if item.answer or item.arxiv_id or item.evidence:
            self.fail(where, "an unanswerable question has no answer, arxiv_id or evidence")
        if not item.why_unanswerable.strip():
            self.fail(where, "why_unanswerable is empty")

    def check_one_paper(self, item: QAItem, where: str) -> None:
        aid = item.arxiv_id if item.answerable else item.extra.get("about")
        paper = self.corpus.papers.get(aid or "")
        if paper is None:
            return self.fail(where, f"names no corpus paper (arxiv_id / about): {aid!r}")
        if item.answerable and item.kind not in ANSWERABLE_ONE_PAPER_KINDS:
            self.fail(where, f"kind {item.kind!r} is not one of {sorted(ANSWERABLE_ONE_PAPER_KINDS)}")
        question = item.question.lower()
        title = paper.title.lower()
        subtitle = title.split(":", 1)[1].strip() if ":" in title else ""
        if paper.arxiv_id in question or title in question or (len(subtitle.split()) >= 3 and subtitle in question):
            self.fail(where, "the question names its paper (arXiv id or title)")
        if paper.authors:
            surname = paper.authors[0].split()[-1]
            if re.search(r"\b" + re.escape(surname) + r"\b", item.question):
                self.fail(where, f"the question names the first author {surname!r}")

    def check_entity(self, item: QAItem, where: str, stated: bool) -> None:
        entity = item.extra.get("entity")
        if not entity:
            return self.fail(where, "no entity")
        names = [entity, *item.extra.get("aliases", [])]
        found, recorded = self.corpus.mentions(names), sorted(item.extra.get("mentions", []))
        if not found:
            self.fail(where, f"{entity!r} occurs in no paper")
        elif found != recorded:
            self.fail(where, f"mentions of {entity!r}: recorded {recorded}, found {found}")
        if stated and item.arxiv_id not in found:
            self.fail(where, f"the answering paper {item.arxiv_id} does not name {entity!r}")
        if not stated:
            hits = self.corpus.near_hits(names, item.extra.get("unit") or "$^")
            if self.show_near:
                print(f"\n## {where} {entity!r} ~ /{item.extra.get('unit')}/: {len(hits)} near hits")
                for aid, window in hits:
                    print(f"  [{aid}] {window}")
            if len(hits) != item.extra.get("near_hits"):
                self.fail(where, f"near hits of {entity!r}: recorded {item.extra.get('near_hits')}, found {len(hits)};"
                                 " read them (--show-near) and update the record or drop the question")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, default=list(DEFAULT_FILES))
    ap.add_argument("--papers", type=Path, default=Path("../shared/papers"), help="folder with manifest.json and PDFs")
    ap.add_argument("--cache", type=Path, help="folder to keep parsed page texts in between runs")
    ap.add_argument("--show-near", action="store_true", help="print every near hit of the unstated questions")
    args = ap.parse_args(argv)
    checker = Checker(Corpus(args.papers, args.cache), args.show_near)
    for path in args.files:
        summary = checker.check_file(path)
        print(json.dumps(summary))
    for error in checker.errors:
        print("FAIL", error)
    print(f"{len(checker.errors)} failures")
    return 1 if checker.errors else 0


if __name__ == "__main__":
    sys.exit(main())
