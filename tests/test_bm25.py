"""BM25 index on real chunks of small papers: exact phrases, incremental add, remove, persistence, a killed writer."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


from indexes.base import Index
from foundation.text import without_question_framing
from indexes.bm25 import BM25Index
from tests.conftest import INDEX_TEST_IDS

ROOT = Path(__file__).resolve().parent.parent


def containing(chunks, phrase):
    return {c.id for c in chunks if phrase.lower() in " ".join(c.text.split()).lower()}


def all_chunks(paper_chunks, ids):
    return [c for a in ids for c in paper_chunks[a]]


def test_exact_phrase_and_scope(tmp_path, paper_chunks):
    base = all_chunks(paper_chunks, ("1910.01108", "2305.13245", "2310.06825"))
    index = BM25Index(tmp_path / "bm25")
    assert isinstance(index, Index)
    index.add(base)
    assert len(index) == len(base)
    for phrase in ("rolling buffer cache", "grouped-query attention", "triple loss"):
        hits = index.search(phrase, 5)
        assert hits and hits[0][0] in containing(base, phrase), (phrase, hits[:2])
    # scoping to one paper only returns its chunks
    scoped = index.search("attention", 10, arxiv_ids=["2305.13245"])
    assert scoped and all(cid.startswith("2305.13245") for cid, _ in scoped)
    assert index.search("attention", 10, arxiv_ids=["0000.00000"]) == []
    assert index.search("the of and", 10) == []  # only stopwords


def test_incremental_add_and_remove(tmp_path, paper_chunks):
    base = all_chunks(paper_chunks, ("1910.01108", "2305.13245", "2310.06825"))
    index = BM25Index(tmp_path / "bm25")
    index.add(base)
    before = index.search("sliding window attention", 5)
    ppo = paper_chunks["1707.06347"]
    t0 = time.perf_counter()
    index.add(ppo)
    assert time.perf_counter() - t0 < 5
    index.add(ppo)  # idempotent
    assert len(index) == len(base) + len(ppo)
    hits = index.search("adaptive KL penalty coefficient", 5)
    assert hits[0][0] in containing(ppo, "adaptive KL penalty coefficient")
    after = index.search("sliding window attention", 5)
    assert [c for c, _ in after][:3] == [c for c, _ in before][:3]  # same top passages (idf shifts scores slightly)

    gqa = {c.id for c in paper_chunks["2305.13245"]}
    index.remove(list(gqa))
    assert len(index) == len(base) + len(ppo) - len(gqa)
    hits = index.search("grouped-query attention uptraining multi-query", 50)
    assert hits and not gqa & {c for c, _ in hits}


def test_persistence_across_processes(tmp_path, paper_chunks):
    base = all_chunks(paper_chunks, ("1910.01108", "2310.06825"))
    path = tmp_path / "bm25"
    jsonl = tmp_path / "chunks.jsonl"
    jsonl.write_text("".join(c.model_dump_json() + "\n" for c in base))
    build = textwrap.dedent(f"""
        from pathlib import Path
        from foundation.types import Chunk
        from indexes.bm25 import BM25Index
        chunks = [Chunk.model_validate_json(l) for l in Path({str(jsonl)!r}).read_text().splitlines()]
        BM25Index(Path({str(path)!r})).add(chunks)
    """)
    subprocess.run([sys.executable, "-c", build], cwd=ROOT, check=True, timeout=120)
    search = textwrap.dedent(f"""
        from pathlib import Path
        from indexes.bm25 import BM25Index
        print(BM25Index(Path({str(path)!r})).search("rolling buffer cache", 1)[0][0])
    """)
    out = subprocess.run([sys.executable, "-c", search], cwd=ROOT, check=True, timeout=120,
                         capture_output=True, text=True).stdout.strip()
    assert out in containing(base, "rolling buffer cache")
    # a reader already open sees another process's change on its next search
    reader = BM25Index(path)
    BM25Index(path).remove([out])
    assert out not in {c for c, _ in reader.search("rolling buffer cache", 20)}


def test_killed_writer_leaves_old_index(tmp_path, paper_chunks):
    base = all_chunks(paper_chunks, ("1910.01108",))
    path = tmp_path / "bm25"
    BM25Index(path).add(base)
    expected = BM25Index(path).search("distillation", 5)
    jsonl = tmp_path / "chunks.jsonl"
    jsonl.write_text("".join(c.model_dump_json() + "\n" for c in paper_chunks["2310.06825"]))
    # A writer that stops (SIGKILL) after writing part of the new version, before the swap.
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from foundation.types import Chunk
        import indexes.bm25 as bm
        real_commit = bm.VersionedDir.commit
        def commit(self, build):
            print("BUILT", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        bm.VersionedDir.commit = commit
        chunks = [Chunk.model_validate_json(l) for l in Path({str(jsonl)!r}).read_text().splitlines()]
        bm.BM25Index(Path({str(path)!r})).add(chunks)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=120, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL and "BUILT" in proc.stdout
    assert list(path.glob(".build-*"))  # its half-made version is there, not live
    index = BM25Index(path)
    assert len(index) == len(base)
    assert index.search("distillation", 5) == expected
    index.add(paper_chunks["2310.06825"])  # the next writer cleans up and succeeds
    assert not list(path.glob(".build-*"))
    assert len(index) == len(base) + len(paper_chunks["2310.06825"])


def _pages(arxiv_id: str, pages: tuple[int, ...]):
    """One chunk per page (pypdf's text) of a real paper: enough to hold a page's wording without parsing it all."""
    from pypdf import PdfReader

    from foundation.types import Chunk
    from tests.conftest import PAPERS

    reader = PdfReader(str(PAPERS / f"{arxiv_id}.pdf"))
    out = []
    for p in pages:
        text = reader.pages[p - 1].extract_text() or ""
        out.append(Chunk(id=Chunk.make_id(arxiv_id, None, p, p, 0), arxiv_id=arxiv_id, page_start=p, page_end=p,
                         char_start=0, char_end=len(text), text=text, n_tokens=len(text.split())))
    return out


def test_a_how_many_question_finds_the_answer_not_sample_questions(tmp_path, paper_chunks):
    """CoT's appendix pages of math word problems ("How many roses did she cut?") once outranked BLOOM's
    training pages for "How long did BLOOM's training take, and on how many GPUs?": "how", "did", "many" and
    "long" counted as search terms. Words that only make it a question are not searched."""
    samples = _pages("2201.11903", (29, 42))  # GSM8K/MAWPS sample problems: "How many ...?", "How much ...?"
    bloom = _pages("2211.05100", (18, 21))  # 3.4.1 Hardware, 3.5 Training
    index = BM25Index(tmp_path / "bm25")
    index.add(all_chunks(paper_chunks, INDEX_TEST_IDS) + samples + bloom)
    hits = index.search("How long did BLOOM's training take, and on how many GPUs?", 3)
    assert hits[0][0] in {c.id for c in bloom}, hits
    assert without_question_framing("How many GPUs, and how long did it take?") == "GPUs, and it take?"
    assert without_question_framing("Why does a long context cost more?") == "a long context cost more?"
