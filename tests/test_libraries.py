"""A BibTeX file and a Zotero library (zotero.sqlite with Zotero's schema, PDFs in storage/) as reading lists,
22+ items each: items with PDFs indexed with the library's metadata and citation keys, items naming only an
arXiv id fetched (from the mirror), the rest listed with reasons; a re-run adds only new items; BibTeX exports
reuse the keys. The readers alone are tested on the same files without a model."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from foundation.types import Citation, PaperStatus, bibtex_entry
from tests.conftest import PAPERS, make_mirror
from tests.own_papers import PAGE_IDS, ZoteroItem, add_items, first_pages, zotero_library

MANIFEST = {m["arxiv_id"]: m for m in json.loads((PAPERS / "manifest.json").read_text())}
FETCHED = ("1910.01108", "2305.13245")  # named by arXiv id only: fetched (here from the mirror)
PDF_IDS = tuple(i for i in PAGE_IDS if i not in FETCHED)[:18]


def authors_of(arxiv_id: str) -> list[tuple[str, str]]:
    names = MANIFEST[arxiv_id]["authors"] or ["Anonymous"]
    return [(" ".join(n.split()[:-1]), n.split()[-1]) for n in names[:4]]


def key_of(arxiv_id: str) -> str:
    last = authors_of(arxiv_id)[0][1].lower()
    return f"{''.join(c for c in last if c.isalpha())}{MANIFEST[arxiv_id]['year']}_{arxiv_id.replace('.', '')[-4:]}"


# --- BibTeX
def bib_library(root: Path) -> Path:
    """22 entries in the formats the reference managers write, plus one entry that is broken."""
    pdfs = {i: first_pages(i, root / "pdfs" / f"{i.replace('.', '-')}.pdf") for i in PDF_IDS}
    entries = []
    for n, arxiv_id in enumerate(PDF_IDS):
        pdf = pdfs[arxiv_id]
        style = n % 4
        file_field = {0: str(pdf),                                            # Better BibTeX: the path
                      1: f"Full Text PDF:{pdf}:application/pdf",              # Zotero's own export
                      2: f":pdfs/{pdf.name}:PDF",                             # JabRef, relative to the .bib
                      3: f"Snapshot:{root}/snap.html:text/html;Full Text:{pdf}:application/pdf"}[style]
        names = " and ".join(f"{last}, {first}" for first, last in authors_of(arxiv_id))
        title = MANIFEST[arxiv_id]["title"]
        if arxiv_id == PDF_IDS[0]:
            title = "My annotated copy: " + title  # the library's own title wins over the PDF's
        doi = f"  doi = {{10.9999/test.{n}}},\n" if n % 5 == 0 else ""
        entries.append(f"@article{{{key_of(arxiv_id)},\n  title = {{{title}}},\n  author = {{{names}}},\n"
                       f"  year = {{{MANIFEST[arxiv_id]['year']}}},\n  journal = {{Test Journal}},\n{doi}"
                       f"  file = {{{file_field}}}\n}}\n")
    for arxiv_id in FETCHED:
        entries.append(f"@misc{{{key_of(arxiv_id)},\n  title = {{{MANIFEST[arxiv_id]['title']}}},\n"
                       f"  author = {{{' and '.join(f'{f} {l}' for f, l in authors_of(arxiv_id))}}},\n"
                       f"  eprint = {{{arxiv_id}}},\n  archivePrefix = {{arXiv}},\n  year = 2020\n}}\n")
    entries.append("@book{knuth1984texbook,\n  title = {The {\\TeX}book},\n  author = {Knuth, Donald E.},\n"
                   "  year = {1984}\n}\n")
    entries.append("@inproceedings{lost2021,\n  title = {A Paper Whose File Moved},\n  author = {Doe, Jane},\n"
                   "  file = {/nowhere/lost.pdf}\n}\n")
    entries.insert(3, "@article{broken2020,\n  title = {Never closed,\n")
    bib = root / "refs.bib"
    bib.write_text("% exported by a reference manager\n" + "\n".join(entries))
    return bib


def test_bibtex_reader_on_the_test_library(tmp_path):
    from ingest.bibtex import read_bibtex

    bib = bib_library(tmp_path)
    entries, problems = read_bibtex(bib)
    assert len(entries) == 22 and len(problems) == 1 and "line" in problems[0] and "not closed" in problems[0]
    with_pdf = [e for e in entries if e.pdf is not None]
    assert len(with_pdf) == 18 and all(e.pdf.is_file() for e in with_pdf)
    first = entries[0]
    assert first.citation_key == key_of(PDF_IDS[0]) and first.title.startswith("My annotated copy: ")
    assert first.authors[0] == " ".join(authors_of(PDF_IDS[0])[0]) and first.venue == "Test Journal"
    fetched = [e for e in entries if e.arxiv_id in FETCHED]
    assert len(fetched) == 2 and all(e.pdf is None for e in fetched)
    lost = next(e for e in entries if e.citation_key == "lost2021")
    assert lost.pdf is None and "not there" in lost.pdf_problem


def test_bibtex_values_and_names():
    from ingest.bibtex import file_paths, latex_to_text, parse_bibtex, split_authors

    entries, problems = parse_bibtex('@string{acl = "Proc. of ACL"}\n@misc{k, title = "A {B}" # " and " # acl,'
                                     ' author = {M{\\"u}ller, J{\\\'e}r{\\^o}me and {Google Research} and others}}')
    assert problems == [] and entries[0][2]["title"] == "A {B} and Proc. of ACL"
    assert split_authors(entries[0][2]["author"]) == ("Jérôme Müller", "Google Research")
    assert latex_to_text(r"\emph{Schr\"{o}dinger's} cat \& {\ss}") == "Schrödinger's cat & ß"
    assert file_paths(r"Full Text:C\:\\Users\\me\\a.pdf:application/pdf", Path("/b"))[0].name.endswith("a.pdf")
    assert file_paths("Snap:/s.html:text/html;PDF:/p.pdf:application/pdf", Path("/b")) == [Path("/p.pdf"),
                                                                                           Path("/s.html")]


@pytest.mark.model
def test_bibtex_library_ingest_and_rerun(settings_for, tmp_path, embedder):
    from assistant.api import Assistant
    from assistant.summaries.draft import Draft, _cite

    bib = bib_library(tmp_path)
    a = Assistant(settings_for(make_mirror(tmp_path / "mirror", FETCHED)), embedder=embedder)
    results = a.ingest([str(bib)])
    papers = [r for r in results if r.kind == "paper"]
    assert sum(r.status == PaperStatus.ok and not r.skipped for r in papers) == 20
    skipped = [r.reason for r in results if r.kind == "input"]
    assert any("knuth1984texbook: skipped, no PDF attached and no arXiv id" in s for s in skipped)
    assert any("lost2021: skipped, its PDF is not there: /nowhere/lost.pdf" in s for s in skipped)
    assert any("not closed" in s for s in skipped)
    records = {r.paper.citation_key: r.paper for r in a.papers()}
    for arxiv_id in PDF_IDS:
        paper = records[key_of(arxiv_id)]
        assert paper.origin == "bibtex" and paper.venue == "Test Journal" and paper.is_local
        assert paper.authors[0] == " ".join(authors_of(arxiv_id)[0])
    assert records[key_of(PDF_IDS[0])].title.startswith("My annotated copy: ")
    assert records[key_of(PDF_IDS[0])].doi == "10.9999/test.0"
    for arxiv_id in FETCHED:  # arXiv papers, their library keys kept
        paper = records[key_of(arxiv_id)]
        assert paper.arxiv_id == arxiv_id and paper.title == MANIFEST[arxiv_id]["title"]

    # BibTeX exports (answers' and drafts') reuse the library's keys.
    paper = records[key_of(PDF_IDS[1])]
    leaf = a.library.store.chunks_of(paper.arxiv_id)[0]
    text, citations = _cite([(" ".join(leaf.text.split()[:30]), leaf)], a.library.store)
    draft = Draft(subject="test", style="summary", length_words=100, text=text, citations=tuple(citations))
    assert draft.bibtex.startswith(f"@article{{{key_of(PDF_IDS[1])},") and citations[0].pdf_path == paper.pdf_path
    fetched = records[key_of(FETCHED[0])]
    bib_entry = bibtex_entry(Citation(n=1, chunk_id="c", arxiv_id=fetched.arxiv_id, page_start=1,
                                      page_end=1).with_paper(fetched))
    assert bib_entry.startswith(f"@misc{{{key_of(FETCHED[0])},") and f"eprint = {{{FETCHED[0]}}}" in bib_entry

    # Re-run: nothing new. Then two entries are added to the file: only they are read.
    n_dense = a.library.dense.count()
    again = [r for r in a.ingest([str(bib)]) if r.kind == "paper"]
    assert again and all(r.skipped for r in again) and a.library.dense.count() == n_dense
    more = [PAGE_IDS[-1], PAGE_IDS[-2]]
    extra = "".join(f"\n@article{{new{i},\n  title = {{Added later {i}}},\n  author = {{Roe, Rick}},\n"
                    f"  file = {{{first_pages(i, tmp_path / 'later' / f'{i}.pdf')}}}\n}}\n" for i in more)
    bib.write_text(bib.read_text() + extra)
    third = [r for r in a.ingest([str(bib)]) if r.kind == "paper"]
    fresh = [r for r in third if not r.skipped]
    assert sorted(r.title for r in fresh) == sorted(f"Added later {i}" for i in more)
    assert a.library.dense.count() > n_dense
    a.close()


# --- Zotero
def zotero_items(root: Path) -> list[ZoteroItem]:
    items = []
    for n, arxiv_id in enumerate(PDF_IDS):
        fields = {"date": f"{MANIFEST[arxiv_id]['year']}-05-01 {MANIFEST[arxiv_id]['year']}"}
        if n % 3 == 0:
            fields["citationKey"] = key_of(arxiv_id)  # Zotero 7's own field
        elif n % 3 == 1:
            fields["extra"] = f"tex.ids: x\nCitation Key: {key_of(arxiv_id)}"  # Better BibTeX's pinned key
        if n % 4 == 0:
            fields["DOI"] = f"10.9999/zot.{n}"
        pdf = first_pages(arxiv_id, root / "downloads" / f"{arxiv_id}.pdf")
        linked = n == 5  # a linked file outside storage/
        items.append(ZoteroItem(key=f"K{n:07d}", title=MANIFEST[arxiv_id]["title"], authors=authors_of(arxiv_id),
                                fields=fields, pdf=None if linked else pdf, linked_pdf=pdf if linked else None,
                                collections=["Thesis"] if n < 10 else (["Chapter 2"] if n < 13 else ["Other"])))
    for n, arxiv_id in enumerate(FETCHED):
        items.append(ZoteroItem(key=f"P{n:07d}", type="preprint", title=MANIFEST[arxiv_id]["title"],
                                authors=authors_of(arxiv_id), fields={"archiveID": f"arXiv:{arxiv_id}",
                                                                      "citationKey": key_of(arxiv_id)},
                                collections=["Thesis"]))
    items.append(ZoteroItem(key="BOOK0001", type="book", title="Speech and Language Processing",
                            authors=[("Daniel", "Jurafsky")], collections=["Other"]))
    items.append(ZoteroItem(key="GONE0001", title="Linked file that moved", linked_pdf=Path("/nowhere/x.pdf")))
    items.append(ZoteroItem(key="TRASH001", title="Deleted paper", deleted=True,
                            pdf=first_pages(PAGE_IDS[-3], root / "downloads" / "trash.pdf")))
    return items


def test_zotero_reader_on_the_test_library(tmp_path):
    from ingest.zotero import ZoteroError, read_zotero

    library = zotero_library(tmp_path / "Zotero", zotero_items(tmp_path),
                             {"Thesis": None, "Chapter 2": "Thesis", "Other": None})
    db = library / "zotero.sqlite"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    holder = sqlite3.connect(str(db))  # Zotero running: it holds its database locked
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        entries = read_zotero(library)
    finally:
        holder.rollback()
        holder.close()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # never written
    assert len(entries) == 22  # 18 with PDFs, 2 preprints, a book, a moved link; not the note, attachments, trash
    keyed = {e.citation_key: e for e in entries if e.citation_key}
    assert set(keyed) == {key_of(i) for i in PDF_IDS[::3]} | {key_of(i) for i in PDF_IDS[1::3]} | \
        {key_of(i) for i in FETCHED}
    stored = keyed[key_of(PDF_IDS[0])]
    assert stored.pdf == (library / "storage" / "0000000K" / f"{PDF_IDS[0]}.pdf").resolve()
    assert stored.doi == "10.9999/zot.0" and stored.year == MANIFEST[PDF_IDS[0]]["year"]
    assert stored.authors[0] == " ".join(authors_of(PDF_IDS[0])[0])
    assert next(e for e in entries if e.item.startswith("Zotero item K0000005")).pdf.name == f"{PDF_IDS[5]}.pdf"
    assert {e.arxiv_id for e in entries if e.pdf is None and e.arxiv_id} == set(FETCHED)
    gone = next(e for e in entries if "GONE0001" in e.item)
    assert gone.pdf is None and "/nowhere/x.pdf" in gone.pdf_problem
    thesis = read_zotero(library, "thesis")  # a collection and its subcollections, by name (any case) or key
    assert len(thesis) == 15 and len(read_zotero(library, "COLL0002")) == 3
    with pytest.raises(ZoteroError, match="no Zotero collection named 'Nope'"):
        read_zotero(library, "Nope")
    with pytest.raises(ZoteroError, match="no zotero.sqlite"):
        read_zotero(tmp_path / "downloads")


@pytest.mark.model
def test_zotero_library_ingest_and_rerun(settings_for, tmp_path, embedder):
    from assistant.api import Assistant

    library = zotero_library(tmp_path / "Zotero", zotero_items(tmp_path),
                             {"Thesis": None, "Chapter 2": "Thesis", "Other": None})
    a = Assistant(settings_for(make_mirror(tmp_path / "mirror", FETCHED)), embedder=embedder)
    results = a.ingest([str(library)])
    papers = [r for r in results if r.kind == "paper"]
    assert sum(r.status == PaperStatus.ok and not r.skipped for r in papers) == 20
    skipped = [r.reason for r in results if r.kind == "input"]
    assert len(skipped) == 2 and any("BOOK0001" in s and "no PDF attached and no arXiv id" in s for s in skipped)
    assert any("GONE0001" in s and "/nowhere/x.pdf" in s for s in skipped)
    records = [r.paper for r in a.papers()]
    assert len(records) == 20 and "Deleted paper" not in {p.title for p in records}
    by_key = {p.citation_key: p for p in records if p.citation_key}
    assert len(by_key) == 14  # 12 stored items with keys + 2 preprints
    stored = by_key[key_of(PDF_IDS[0])]
    assert stored.origin == "zotero" and stored.doi == "10.9999/zot.0" and "storage" in stored.pdf_path
    assert stored.title == MANIFEST[PDF_IDS[0]]["title"] and stored.eprint == PDF_IDS[0]
    hits = a.search(MANIFEST[PDF_IDS[3]]["title"], k=1)
    assert hits[0].paper.citation_key == key_of(PDF_IDS[3]) and hits[0].chunk.page_start == 1
    preprint = by_key[key_of(FETCHED[1])]
    assert preprint.arxiv_id == FETCHED[1] and preprint.origin == "arxiv"

    # Re-run: nothing new; two papers added in Zotero later: only they are read.
    n_dense = a.library.dense.count()
    assert all(r.skipped for r in a.ingest([str(library)]) if r.kind == "paper")
    assert a.library.dense.count() == n_dense
    add_items(library, [ZoteroItem(key=f"NEW{n:05d}", title=f"Added later {n}", authors=[("Rick", "Roe")],
                                   fields={"citationKey": f"roe2024later{n}"},
                                   pdf=first_pages(i, tmp_path / "later" / f"{i}.pdf"))
                        for n, i in enumerate(PAGE_IDS[-2:])])
    fresh = [r for r in a.ingest([str(library / "zotero.sqlite")]) if r.kind == "paper" and not r.skipped]
    assert sorted(r.title for r in fresh) == ["Added later 0", "Added later 1"]
    assert a.library.store.paper(fresh[0].arxiv_id).paper.citation_key.startswith("roe2024later")
    a.close()
