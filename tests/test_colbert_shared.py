"""One MiniLM forward pass feeds both the dense and the ColBERT index (the offline ColBERT checkpoint has
MiniLM's weights): at ingest each chunk is encoded once, a hybrid query once, and a ColBERT build killed
late in an ingest resumes from the spooled token vectors instead of encoding every chunk again."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import kill_at_marker, make_mirror

ROOT = Path(__file__).resolve().parent.parent
PAPER = "2305.13245"  # GQA: small
pytestmark = [pytest.mark.colbert, pytest.mark.model, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def counting():
    """A MiniLM embedder that counts the texts put through its forward pass (`encode` and `embed`)."""
    from indexes.embedder import SentenceTransformerEmbedder

    class Counting(SentenceTransformerEmbedder):
        encoded = 0

        def encode(self, texts, threads=None):
            texts = list(texts)
            self.encoded += len(texts)
            return super().encode(texts, threads)

        def embed(self, texts, progress=None):
            texts = list(texts)
            self.encoded += len(texts)
            return super().embed(texts, progress)

    return Counting("all-MiniLM-L6-v2")


def open_library(settings, embedder):
    from indexes.library import Library

    return Library(settings, embedder)


def test_ingest_encodes_each_chunk_once_and_hybrid_each_query_once(settings_for, tmp_path, counting):
    from assistant.engine.retrieve import Retriever
    from ingest.pipeline import Ingestor

    settings = settings_for(make_mirror(tmp_path / "mirror", [PAPER]), indexes=["bm25", "colbert"])
    library = open_library(settings, counting)
    colbert = library.extra_indexes["colbert"]
    assert colbert.shared is not None  # the default checkpoint shares MiniLM's weights
    counting.encoded = 0
    [result] = Ingestor(library).ingest([PAPER])
    assert result.status.value == "ok" and result.n_chunks > 10
    assert counting.encoded == result.n_chunks  # dense and ColBERT from the same pass, no second encode
    assert len(colbert) == result.n_chunks and colbert.info()["encoding"] == "shared"
    assert len(colbert.spool) == 0 and not list(colbert.spool.folder.glob("*.npz"))  # used, then dropped

    retriever = Retriever(library)
    counting.encoded = 0
    reranked, rerank = [], colbert.rerank
    colbert.rerank = lambda query, ids: reranked.append(list(ids)) or rerank(query, ids)
    hits = retriever.search("uptraining multi-query checkpoints with 5% of pre-training compute", mode="hybrid", k=5)
    assert counting.encoded == 1  # dense and ColBERT share one query encode
    assert len(reranked) == 1 and 0 < len(reranked[0]) <= 60  # ColBERT ordered the best 15 of dense and of BM25
    assert {h.chunk.id for h in hits} <= set(reranked[0])
    assert hits and all(h.chunk.arxiv_id == PAPER for h in hits)
    assert retriever.relevance("uptraining multi-query checkpoints with 5% of pre-training compute") > 0.3
    assert counting.encoded == 1  # the relevance gate reuses the same encoding
    top = colbert.search("grouped-query attention", 3)
    assert "grouped-query" in " ".join(library.store.chunks([top[0][0]])[top[0][0]].text.split()).lower()
    library.close()


def test_colbert_build_killed_late_resumes_from_encodings(settings_for, tmp_path, counting):
    settings = settings_for(make_mirror(tmp_path / "mirror", [PAPER]), indexes=["colbert"])
    # An ingest whose ColBERT build is SIGKILLed once it has started writing its new version.
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from foundation.config import Settings
        from assistant.api import Assistant
        def progress(event):
            if event.stage == "build" and event.done:
                print("BUILDING", event.done, event.total, flush=True)
                time.sleep(120)
        if __name__ == "__main__":
            settings = Settings(home=Path({str(settings.home)!r}), mirror=Path({str(settings.mirror)!r}),
                                offline=True, arxiv_delay_s=0.0, indexes=["colbert"])
            Assistant(settings).ingest([{PAPER!r}], progress=progress)
    """)
    kill_at_marker(script, "BUILDING", ROOT)
    colbert_dir = settings.index_dir / "colbert"
    assert list(colbert_dir.glob(".build-*")) and not (colbert_dir / "CURRENT").exists()

    library = open_library(settings, counting)
    n_chunks = library.store.count_chunks()
    colbert = library.extra_indexes["colbert"]
    assert len(colbert.spool) == n_chunks  # every chunk's token vectors survived the kill
    counting.encoded = 0
    library.sync_indexes()
    assert counting.encoded == 0  # resumed from the spool: nothing encoded again
    assert len(colbert) == n_chunks
    assert not list(colbert_dir.glob(".build-*"))  # the killed build's leftovers are gone
    assert len(colbert.spool) == 0
    assert colbert.search("grouped-query attention", 1)
    library.close()


def test_spool_survives_a_torn_file_and_prunes(tmp_path):
    import numpy as np

    from indexes.colbert.encodings import EncodingSpool

    spool = EncodingSpool(tmp_path / "enc")
    vecs = [np.ones((3, 4), dtype=np.float16), np.zeros((2, 4), dtype=np.float16)]
    spool.put(["a", "b"], vecs)
    spool.put(["c"], [np.full((1, 4), 2, dtype=np.float16)])
    (tmp_path / "enc" / "torn.npz").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "enc" / ".tmp-1-x.npz").write_bytes(b"half")
    fresh = EncodingSpool(tmp_path / "enc")
    got = fresh.get(["a", "b", "c", "zzz"])
    assert sorted(got) == ["a", "b", "c"] and got["a"].shape == (3, 4) and float(got["c"][0, 0]) == 2.0
    assert not (tmp_path / "enc" / "torn.npz").exists()  # unreadable: dropped, to be encoded again
    assert fresh.prune({"a"}) == 0  # "b" shares a's file and is not done yet
    assert fresh.prune({"a", "b"}) == 1 and "c" in fresh and "a" not in fresh
    assert not list((tmp_path / "enc").glob(".tmp-*"))
