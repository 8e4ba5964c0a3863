"""The real pipeline on real PDFs: mirror -> pypdf -> chunks -> MiniLM -> chromadb on disk."""
import os
import signal
import subprocess
import sys

import pytest

from assistant.api import Assistant
from foundation.types import PaperStatus
from indexes.store import IndexMismatch
from tests.conftest import PAPERS, SMALL_IDS, make_mirror

ROBERTA, GQA = SMALL_IDS


def test_ingest_search_reingest_remove(settings_for, mini_mirror, embedder):
    a = Assistant(settings_for(mini_mirror), embedder=embedder)
    results = a.ingest([ROBERTA, f"https://arxiv.org/abs/{GQA}v3", "../../etc/passwd", "2401.99999"])
    by_id = {r.arxiv_id: r for r in results}
    assert by_id[ROBERTA].status == PaperStatus.ok and by_id[ROBERTA].n_chunks > 20
    assert by_id[GQA].status == PaperStatus.ok
    assert by_id["2401.99999"].status == PaperStatus.failed and "offline" in by_id["2401.99999"].reason
    assert any("etc/passwd" in r.reason for r in results if r.status == PaperStatus.failed)
    n_chunks = a.library.dense.count()
    assert n_chunks == a.library.store.count_chunks() == by_id[ROBERTA].n_chunks + by_id[GQA].n_chunks

    hits = a.search("grouped-query attention interpolates between multi-head and multi-query attention", k=5)
    assert hits[0].chunk.arxiv_id == GQA and hits[0].paper_title.startswith("GQA")
    assert hits[0].chunk.page_start >= 1 and hits[0].chunk.section

    # Re-ingesting the same papers changes nothing and embeds nothing.
    again = a.ingest([ROBERTA, GQA])
    assert all(r.skipped for r in again) and a.library.dense.count() == n_chunks

    # Scoping and removal.
    scoped = a.search("dynamic masking", k=5, papers=[GQA])
    assert {h.chunk.arxiv_id for h in scoped} == {GQA}
    assert a.remove(ROBERTA)
    assert all(h.chunk.arxiv_id == GQA for h in a.search("dynamic masking BERT pretraining", k=10))
    assert a.library.dense.count() == a.library.store.count_chunks() == by_id[GQA].n_chunks
    assert not a.remove(ROBERTA)


def test_failed_paper_is_retried_on_the_next_run(settings_for, tmp_path, embedder):
    mirror = make_mirror(tmp_path / "m", [GQA])
    a = Assistant(settings_for(mirror), embedder=embedder)
    [first] = a.ingest([ROBERTA])
    assert first.status == PaperStatus.failed
    make_mirror(mirror, [ROBERTA, GQA])
    [second] = a.ingest([ROBERTA])
    assert second.status == PaperStatus.ok and not second.skipped


@pytest.mark.parametrize("kind", ["corrupt", "not_pdf", "encrypted", "blank"])
def test_bad_pdfs_fail_with_a_reason_and_the_rest_goes_on(settings_for, tmp_path, embedder, kind):
    from pypdf import PdfReader, PdfWriter

    mirror = make_mirror(tmp_path / "m", [GQA])
    bad_id = "2101.00001"
    path = mirror / f"{bad_id}.pdf"
    if kind == "corrupt":
        path.write_bytes((PAPERS / f"{ROBERTA}.pdf").read_bytes()[:5000])
    elif kind == "not_pdf":
        path.write_text("<html>not a pdf</html>")
    else:
        writer = PdfWriter()
        if kind == "blank":
            writer.add_blank_page(612, 792)
        else:
            for page in PdfReader(PAPERS / f"{GQA}.pdf").pages[:2]:
                writer.add_page(page)
            writer.encrypt(user_password="secret", owner_password="owner")
        with open(path, "wb") as fh:
            writer.write(fh)
    a = Assistant(settings_for(mirror), embedder=embedder)
    results = {r.arxiv_id: r for r in a.ingest([bad_id, GQA])}
    assert results[bad_id].status == PaperStatus.failed and results[bad_id].reason
    assert results[GQA].status == PaperStatus.ok
    assert {r.paper.arxiv_id: r.status for r in a.papers()} == {bad_id: PaperStatus.failed, GQA: PaperStatus.ok}
    assert a.library.dense.count() == results[GQA].n_chunks


def test_reading_list_with_no_ids_is_an_error(settings_for, mini_mirror, tmp_path, embedder):
    empty = tmp_path / "list.md"
    empty.write_text("# My reading list\nNothing here yet, see https://example.org/paper.pdf\n")
    a = Assistant(settings_for(mini_mirror), embedder=embedder)
    [result] = a.ingest([str(empty)])
    assert result.status == PaperStatus.failed and "no arXiv" in result.reason


def test_index_refuses_other_settings(settings_for, mini_mirror, embedder):
    a = Assistant(settings_for(mini_mirror), embedder=embedder)
    a.ingest([GQA])
    a.close()
    with pytest.raises(IndexMismatch, match="chunk_tokens"):
        Assistant(settings_for(mini_mirror, chunk_tokens=120), embedder=embedder).papers()


def test_question_on_an_empty_index_says_so(settings_for, tmp_path, embedder):
    from tests.fakes import ScriptedLLM

    llm = ScriptedLLM(["should never be called"])
    a = Assistant(settings_for(None), embedder=embedder, llm=llm)
    answer = a.ask("What is grouped-query attention?")
    assert answer.abstained and not answer.citations and llm.calls == []


KILL_SCRIPT = """
import sys
from assistant.api import Assistant
from foundation.config import Settings
s = Settings(home=sys.argv[1], mirror=sys.argv[2], offline=True, embed_batch_size=4)
a = Assistant(s)
def progress(e):
    if e.stage == "embed":
        print("EMBED", e.done, flush=True)
a.ingest(sys.argv[3:], progress=progress)
print("DONE", flush=True)
"""


def test_killed_ingest_resumes_without_duplicates(tmp_path, mini_mirror, settings_for, embedder):
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(home), str(mini_mirror), ROBERTA, GQA],
                            stdout=subprocess.PIPE, text=True, cwd=str(tmp_path),
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    for line in proc.stdout:
        if line.startswith("EMBED") and int(line.split()[1]) >= 12:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    a = Assistant(settings_for(mini_mirror), embedder=embedder)
    mid = {r.paper.arxiv_id: r.status for r in a.papers()}
    assert mid.get(ROBERTA) == PaperStatus.pending  # interrupted, not marked ok
    # The index stays queryable, and the half-indexed paper's passages are not searchable.
    assert a.search("dynamic masking RoBERTa", k=3, mode="dense") == []
    results = a.ingest([ROBERTA, GQA])
    assert all(r.status == PaperStatus.ok for r in results)
    ids = [c.id for c in a.library.store.iter_chunks()]
    assert len(ids) == len(set(ids)) == a.library.dense.count()
