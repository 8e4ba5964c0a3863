"""PDFs from disk: a folder of 20 mixed real PDFs (corpus pages under other names, a duplicate, one written
without any arXiv id, a broken and a fake PDF beside a text file) through the real pipeline, then an edited
PDF, a moved one and removal by path; the PDF metadata reader over the corpus; the store's migration."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from foundation.types import Citation, PaperStatus, bibtex_entry, is_local_id
from tests.conftest import PAPERS, make_mirror
from tests.own_papers import copy_paper, first_pages, text_pdf

GQA = "2305.13245"
PAGE_PAPERS = ("1907.11692", "1910.13461", "1802.05365", "1910.01108", "2210.17323", "2004.05150", "1701.06538",
               "2305.11206", "2003.10555", "2306.00978", "2310.06825", "2304.08467", "2211.17192", "2212.10560",
               "2302.13971")
HANDOUT_TITLE = "Distilling Pretrained Transformers for Small Devices"
HANDOUT_AUTHORS = ["Victor Sanh", "Lysandre Debut", "Julien Chaumond", "Thomas Wolf"]
HANDOUT_DOI = "10.5555/3454287.3454804"
EDIT_SENTENCE = ("A quokka-sized student keeps ninety-seven percent of the teacher's accuracy on the heron "
                 "reading benchmark after distillation.")


def handout_paragraphs() -> list[str]:
    """Real prose (DistilBERT's pages 2-3) without the arXiv stamp or any arXiv reference."""
    from pypdf import PdfReader

    reader = PdfReader(PAPERS / "1910.01108.pdf")
    text = " ".join(page.extract_text() for page in reader.pages[1:3])
    words = [w for w in text.split() if "arxiv" not in w.lower()]
    return [" ".join(words[i:i + 120]) for i in range(0, min(len(words), 960), 120)]


def build_folder(root: Path) -> Path:
    """20 PDFs (16 distinct readable papers, one duplicate, two unusable) and a text file, in subfolders."""
    folder = root / "papers"
    copy_paper(GQA, folder / "GQA uptraining.pdf")
    copy_paper(GQA, folder / "to read" / "gqa (copy).pdf")  # the same bytes under another name
    for i, arxiv_id in enumerate(PAGE_PAPERS):
        sub = ("course", "course/week 2", "")[i % 3]
        first_pages(arxiv_id, folder / sub / f"reading-{i:02d}.PDF" if i == 4 else folder / sub / f"reading-{i:02d}.pdf")
    text_pdf(folder / "handout.pdf", HANDOUT_TITLE, HANDOUT_AUTHORS, handout_paragraphs(), doi=HANDOUT_DOI)
    (folder / "broken.pdf").write_bytes((PAPERS / "1910.13461.pdf").read_bytes()[:30000])  # cut short
    (folder / "notes.pdf").write_text("my notes, not a PDF at all\n")
    (folder / "notes.txt").write_text("reading plan\n")
    return folder


@pytest.mark.model
def test_a_folder_of_mixed_pdfs(settings_for, tmp_path, embedder):
    from assistant.api import Assistant
    from assistant.cli.app import ingest_error
    from indexes.health import check

    folder = build_folder(tmp_path)
    manifest = {m["arxiv_id"]: m for m in json.loads((PAPERS / "manifest.json").read_text())}
    # The mirror stands in for arXiv: a corpus page's printed id links it to its arXiv record there.
    mirror = make_mirror(tmp_path / "mirror", [GQA, *PAGE_PAPERS])
    a = Assistant(settings_for(mirror), embedder=embedder)
    results = a.ingest([str(folder)])

    papers = [r for r in results if r.kind == "paper"]
    assert len(papers) == 20
    ok = {r.arxiv_id for r in papers if r.status == PaperStatus.ok}
    assert len(ok) == 17 and all(is_local_id(i) for i in ok)  # 15 pages + GQA + the handout; the copy counted once
    copy = next(r for r in papers if r.item.endswith("gqa (copy).pdf"))
    assert copy.skipped and "the same PDF as" in copy.note and "GQA uptraining.pdf" in copy.note
    failed = {Path(r.item).name: r.reason for r in papers if r.status == PaperStatus.failed}
    assert set(failed) == {"broken.pdf", "notes.pdf"}
    assert "truncated" in failed["broken.pdf"] and "not a PDF" in failed["notes.pdf"]
    inputs = [r.reason for r in results if r.kind == "input"]
    assert len(inputs) == 1 and "notes.txt" in inputs[0]
    assert ingest_error(results) is None  # the exit code: 0, some papers are in

    records = {r.paper.arxiv_id: r for r in a.papers()}
    assert sum(r.status == PaperStatus.ok for r in records.values()) == 17
    by_file = {Path(r.paper.pdf_path).name: r.paper for r in records.values()}
    # Linked to their arXiv records through the id printed on page 1: the manifest's title, authors, year.
    for i, arxiv_id in enumerate(PAGE_PAPERS):
        paper = by_file[f"reading-{i:02d}.PDF" if i == 4 else f"reading-{i:02d}.pdf"]
        assert paper.eprint == arxiv_id and paper.origin == "pdf"
        assert paper.title == manifest[arxiv_id]["title"] and paper.year == manifest[arxiv_id]["year"]
        hits = a.search(paper.title, k=3)  # searchable and citable with title and page
        assert hits[0].chunk.arxiv_id == paper.arxiv_id and hits[0].paper_title == paper.title
        assert hits[0].chunk.page_start == 1 and hits[0].paper.pdf_path == paper.pdf_path
    # Written without any arXiv id: everything comes from its first page and info dictionary.
    handout = by_file["handout.pdf"]
    assert handout.title == HANDOUT_TITLE and list(handout.authors) == HANDOUT_AUTHORS
    assert handout.eprint == "" and handout.doi == HANDOUT_DOI and handout.year == 2019
    hits = a.search("knowledge distillation compresses a larger model into a smaller student", k=5)
    hit = next(h for h in hits if h.chunk.arxiv_id == handout.arxiv_id)
    citation = Citation(n=1, chunk_id=hit.chunk.id, arxiv_id=hit.chunk.arxiv_id, page_start=hit.chunk.page_start,
                        page_end=hit.chunk.page_end).with_paper(hit.paper)
    assert citation.pdf_path == str(folder / "handout.pdf") and citation.title == HANDOUT_TITLE
    assert citation.label.startswith(f"[1] {HANDOUT_TITLE} (PDF)")
    bib = bibtex_entry(citation)
    assert bib.startswith("@article{sanh2019distilling,") and f"doi = {{{HANDOUT_DOI}}}" in bib
    assert "eprint" not in bib and "author = {Victor Sanh and Lysandre Debut" in bib
    page = next(p for p in a.papers() if p.paper.eprint == PAGE_PAPERS[0]).paper
    bib = bibtex_entry(Citation(n=2, chunk_id="x", arxiv_id=page.arxiv_id, page_start=1, page_end=1).with_paper(page))
    assert bib.startswith("@misc{") and f"eprint = {{{PAGE_PAPERS[0]}}}" in bib

    # Run again: nothing new, nothing embedded.
    n_dense = a.library.dense.count()
    again = a.ingest([str(folder)])
    assert all(r.skipped for r in again if r.kind == "paper" and r.status == PaperStatus.ok)
    assert a.library.dense.count() == n_dense == a.library.store.count_searchable()

    # Edited after ingest: a new version of the same paper; the old passages leave every index.
    text_pdf(folder / "handout.pdf", HANDOUT_TITLE, HANDOUT_AUTHORS, handout_paragraphs() + [EDIT_SENTENCE],
             doi=HANDOUT_DOI)
    edited = next(r for r in a.ingest([str(folder)]) if r.item.endswith("handout.pdf"))
    assert edited.arxiv_id == handout.arxiv_id and not edited.skipped and "new version v2" in edited.note
    record = a.library.store.paper(handout.arxiv_id)
    assert record.paper.version == 2 and record.status == PaperStatus.ok
    assert {c.version for c in a.library.store.chunks_of(handout.arxiv_id)} == {2}
    top = a.search("quokka-sized student heron reading benchmark", k=1)[0]
    assert top.chunk.arxiv_id == handout.arxiv_id and top.chunk.version == 2 and "quokka" in top.chunk.text
    report = check(a.library)
    assert report.consistent, report.issues

    # Moved: the same bytes elsewhere are the same paper, and `o` finds it where it is now.
    moved = tmp_path / "elsewhere" / "gqa.pdf"
    moved.parent.mkdir()
    (folder / "GQA uptraining.pdf").rename(moved)
    [result] = [r for r in a.ingest([str(moved)]) if r.kind == "paper"]
    assert result.skipped and a.library.store.paper(result.arxiv_id).paper.pdf_path == str(moved)

    # Removed by its file.
    gone = a.paper_id_of(str(folder / "handout.pdf"))
    assert gone == handout.arxiv_id and a.remove(gone)
    assert a.library.store.pdf_owner(record.paper.content_hash) is None
    assert check(a.library).consistent
    a.close()


@pytest.mark.model
def test_a_folder_of_only_broken_pdfs_fails_honestly(settings_for, tmp_path, embedder):
    from assistant.api import Assistant
    from assistant.cli.app import ingest_error

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.pdf").write_bytes((PAPERS / "1910.13461.pdf").read_bytes()[:20000])
    (folder / "b.pdf").write_text("not a pdf")
    a = Assistant(settings_for(), embedder=embedder)
    results = a.ingest([str(folder), str(tmp_path / "empty")])
    assert ingest_error(results) == "all 2 papers failed"
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    results = a.ingest([str(empty)])
    assert ingest_error(results).startswith("nothing to ingest: no files matching '*.pdf'")
    a.close()


def test_pdf_metadata_of_the_corpus():
    """Titles and arXiv ids from the PDFs alone (no manifest) over every corpus paper."""
    from ingest.pdf_metadata import read_pdf_metadata

    manifest = {m["arxiv_id"]: m for m in json.loads((PAPERS / "manifest.json").read_text())}
    squash = lambda s: "".join(c for c in s.lower() if c.isalnum())  # noqa: E731
    right_titles = right_ids = 0
    for pdf in sorted(PAPERS.glob("*.pdf")):
        meta = read_pdf_metadata(pdf)
        right_ids += meta.arxiv_id == pdf.stem
        right_titles += squash(meta.title)[:40] == squash(manifest[pdf.stem]["title"] or "")[:40]
    n = len(list(PAPERS.glob("*.pdf")))
    assert right_ids == n
    assert right_titles >= n - 3, f"{right_titles} of {n} titles"


def test_find_pdfs_is_recursive_case_blind_and_takes_a_glob(tmp_path):
    from ingest.local import find_pdfs

    for name in ("a.pdf", "sub/B.PDF", "sub/deeper/c.pdf", "sub/notes.txt", ".hidden/d.pdf", "slides-1.pdf"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found, others = find_pdfs(tmp_path, "*.pdf")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.pdf", "slides-1.pdf", "sub/B.PDF",
                                                                   "sub/deeper/c.pdf"]
    assert [p.name for p in others] == ["notes.txt"]
    found, _ = find_pdfs(tmp_path, "slides-*.pdf")
    assert [p.name for p in found] == ["slides-1.pdf"]


def test_store_migration_keeps_an_old_library(tmp_path):
    """A schema-1 library (before PDFs from disk) opens: its papers read as arXiv papers, new columns empty."""
    from indexes.store import MIGRATIONS, SCHEMA_VERSION, Store

    path = tmp_path / "library.sqlite"
    db = sqlite3.connect(str(path))
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO papers VALUES ('1706.03762', 7, 'Attention Is All You Need', '[\"Ashish Vaswani\"]', "
               "2017, '', '/m/1706.03762.pdf', 'ok', '', 40, 1.0)")
    db.commit()
    db.close()
    store = Store(path)
    record = store.paper("1706.03762")
    assert record.paper.title == "Attention Is All You Need" and record.paper.version == 7 and record.n_chunks == 40
    assert record.paper.origin == "arxiv" and record.paper.citation_key == "" and record.paper.content_hash == ""
    store.update_metadata(record.paper.model_copy(update={"citation_key": "vaswani2017attention"}))
    assert store.paper("1706.03762").paper.citation_key == "vaswani2017attention"
    assert store.paper("1706.03762").status == PaperStatus.ok
    store.close()
    version = sqlite3.connect(str(path)).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)  # migrated to the newest schema (3 added chunk kinds)


@pytest.mark.model
def test_cli_folder_glob_zotero_and_exit_codes(tmp_path):
    """The three ways in as a user types them (a real subprocess): --glob, --zotero DIR, and honest exit codes."""
    from tests.own_papers import ZoteroItem, zotero_library
    from tests.test_cli import cli

    home = tmp_path / "home"
    folder = tmp_path / "papers"
    first_pages("2305.11206", folder / "slides-lima.pdf")
    first_pages("2310.06825", folder / "mistral.pdf")
    done = cli("ingest", str(folder), "--glob", "slides-*.pdf", "--json", home=home)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ok"] == 1 and [r["item"] for r in out["results"] if r["kind"] == "paper"] == [
        str(folder / "slides-lima.pdf")]
    assert any("mistral.pdf" in r["reason"] for r in out["results"] if r["kind"] == "input")

    zotero = zotero_library(tmp_path / "Zotero", [ZoteroItem(
        key="MISTRAL1", title="Mistral 7B", authors=[("Albert Q.", "Jiang")], fields={"citationKey": "jiang2023mistral"},
        pdf=folder / "mistral.pdf")], {})
    done = cli("ingest", "--zotero", str(zotero), "--json", home=home)
    assert done.returncode == 0, done.stderr
    [paper] = [r for r in json.loads(done.stdout)["results"] if r["kind"] == "paper"]
    assert paper["status"] == "ok" and paper["title"] == "Mistral 7B"
    listed = {p["paper"]["citation_key"]: p["paper"] for p in json.loads(cli("papers", "--json", home=home).stdout)}
    assert listed["jiang2023mistral"]["origin"] == "zotero" and "storage" in listed["jiang2023mistral"]["pdf_path"]
    human = cli("search", "sliding window attention grouped-query attention Mistral", "-k", "1", home=home)
    assert human.returncode == 0 and "(PDF)" in human.stdout and "page 1" in human.stdout

    not_zotero = cli("ingest", "--zotero", str(folder), home=home)
    assert not_zotero.returncode == 2 and "no zotero.sqlite" in not_zotero.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.pdf").write_text("not a pdf")
    failed = cli("ingest", str(tmp_path / "bad"), "--json", home=home)
    assert failed.returncode == 1 and json.loads(failed.stdout)["error"] == "the paper failed: unreadable PDF: " \
        "not a PDF (no %PDF- header)"
