import sqlite3

import pytest

from foundation.types import PASSAGES_VERSION, Chunk, Paper, PaperStatus
from indexes.store import SCHEMA_VERSION, IndexMismatch, Store


def chunk(arxiv_id: str, start: int, text: str = "some text", level: int = 0) -> Chunk:
    return Chunk(id=Chunk.make_id(arxiv_id, 1, 1, 1, start), arxiv_id=arxiv_id, version=1, section="Intro",
                 page_start=1, page_end=1, char_start=start, char_end=start + len(text), text=text, level=level)


def test_chunk_ids_are_stable_and_distinct():
    assert Chunk.make_id("1706.03762", 5, 2, 3, 100) == Chunk.make_id("1706.03762", 5, 2, 3, 100)
    assert Chunk.make_id("1706.03762", 5, 2, 3, 100) != Chunk.make_id("1706.03762", 5, 2, 3, 101)
    assert "/" not in Chunk.make_id("hep-th/9901001", None, 1, 1, 0)


def test_papers_and_chunks_round_trip(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    paper = Paper(arxiv_id="1706.03762", version=7, title="Attention", authors=("A", "B"), year=2017)
    store.upsert_paper(paper, PaperStatus.pending)
    chunks = [chunk("1706.03762", i * 10, f"text {i}") for i in range(5)]
    assert store.replace_chunks("1706.03762", chunks) == []
    store.set_status("1706.03762", PaperStatus.ok, n_chunks=5)
    rec = store.paper("1706.03762")
    assert rec.status == PaperStatus.ok and rec.n_chunks == 5 and rec.paper.authors == ("A", "B")
    assert [c.text for c in store.chunks_of("1706.03762")] == [f"text {i}" for i in range(5)]
    assert [c.text for c in store.neighbours(chunks[2].id)] == ["text 1", "text 2", "text 3"]
    # Re-chunking reports the ids that disappeared so the indexes can drop them.
    stale = store.replace_chunks("1706.03762", chunks[:3])
    assert stale == sorted(c.id for c in chunks[3:])
    assert store.count_chunks() == 3
    assert sorted(store.delete_paper("1706.03762")) == sorted(c.id for c in chunks[:3])
    assert store.paper("1706.03762") is None and store.count_chunks() == 0


def test_store_persists_across_reopen(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.upsert_paper(Paper(arxiv_id="2001.08361"), PaperStatus.failed, "no PDF")
    store.close()
    again = Store(tmp_path / "s.sqlite")
    assert again.paper("2001.08361").reason == "no PDF"


def test_fingerprint_mismatch_is_refused_with_a_clear_message(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.check_fingerprint({"embedder": "all-MiniLM-L6-v2", "chunk_tokens": 200})
    store.check_fingerprint({"embedder": "all-MiniLM-L6-v2", "chunk_tokens": 200})
    with pytest.raises(IndexMismatch, match="chunk_tokens: index has 200, settings ask 300"):
        store.check_fingerprint({"embedder": "all-MiniLM-L6-v2", "chunk_tokens": 300})


def test_index_from_a_newer_version_is_refused(tmp_path):
    Store(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(IndexMismatch, match="newer paper-assistant"):
        Store(tmp_path / "s.sqlite")


def test_a_schema_1_index_is_migrated_its_passages_marked_as_old(tmp_path):
    """An index written before chunks had kinds: its rows read as text chunks of passages version 1, which
    the next ingest of the paper replaces (tests/test_tables.py)."""
    from indexes.store import MIGRATIONS

    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO papers VALUES ('1706.03762', 7, 'Attention', '[]', 2017, '', NULL, 'ok', '', 1, 0)")
    db.execute("INSERT INTO chunks VALUES ('c1', '1706.03762', 7, 'Intro', 1, 1, 0, 9, 'some text', 2, 0, '[]', 0)")
    db.commit()
    db.close()
    store = Store(tmp_path / "s.sqlite")
    assert store.paper("1706.03762").passages == 1 < PASSAGES_VERSION
    assert [(c.id, c.kind) for c in store.chunks_of("1706.03762")] == [("c1", "text")]
    table = chunk("1706.03762", 5).model_copy(update={"id": "t1", "kind": "table", "section": "Table 1"})
    store.stage_paper(Paper(arxiv_id="1706.03762", version=7), [table])
    assert store.paper("1706.03762").passages == PASSAGES_VERSION
    assert [(c.id, c.kind) for c in store.chunks_of("1706.03762")] == [("t1", "table")]


def test_a_table_chunk_id_differs_from_a_text_chunk_id_at_the_same_offset():
    assert Chunk.make_id("1706.03762", 5, 2, 2, 100, kind="table") != Chunk.make_id("1706.03762", 5, 2, 2, 100)
    assert Chunk.make_id("1706.03762", 5, 2, 2, 100, kind="text") == Chunk.make_id("1706.03762", 5, 2, 2, 100)


def leaf(arxiv_id: str, version: int, start: int) -> Chunk:
    return Chunk(id=Chunk.make_id(arxiv_id, version, 1, 1, start), arxiv_id=arxiv_id, version=version, section="S",
                 page_start=1, page_end=1, char_start=start, char_end=start + 4, text=f"v{version} {start}")


def test_searchable_means_ok_at_the_current_version(tmp_path):
    """What the secondary indexes are synced from: a pending paper and a staged version stay out, and the
    swap to a new version is one transaction that returns the old ids for the indexes to drop."""
    store = Store(tmp_path / "s.sqlite")
    v3 = Paper(arxiv_id="2305.13245", version=3)
    store.stage_paper(v3, [leaf("2305.13245", 3, i) for i in range(3)])
    assert store.paper("2305.13245").status == PaperStatus.pending and store.paper("2305.13245").n_chunks == 3
    assert list(store.iter_searchable()) == [] and store.count_searchable() == 0
    store.set_status("2305.13245", PaperStatus.ok, n_chunks=3)
    assert store.count_searchable() == 3

    store.stage_version([leaf("2305.13245", 4, i) for i in range(2)])  # an upgrade in progress
    assert {c.version for c in store.iter_searchable()} == {3} and store.count_chunks() == 5
    old = store.promote_version(v3.model_copy(update={"version": 4}), 2)
    assert len(old) == 3 and {c.version for c in store.iter_searchable()} == {4}
    assert store.paper("2305.13245").paper.version == 4 and store.count_chunks() == 2

    store.upsert_paper(Paper(arxiv_id="2401.00001"), PaperStatus.failed, "offline")
    store.upsert_paper(Paper(arxiv_id="2401.00002"), PaperStatus.failed, "offline")
    assert store.delete_failed() == ["2401.00001", "2401.00002"]
    assert [r.paper.arxiv_id for r in store.papers()] == ["2305.13245"]
