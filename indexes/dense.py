"""Dense index: chunk embeddings in chromadb (persistent on disk, or a `chroma run` server by URL)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import numpy as np

from foundation.types import Chunk
from indexes.base import Embedder

# chromadb rejects very large single writes; this stays well under its max batch size.
WRITE_BATCH = 1000


def open_chroma(path: Path | None = None, url: str | None = None):
    """A chromadb client: a server when url is given, else a persistent store at path. Telemetry off."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        parsed = urlparse(url)
        return chromadb.HttpClient(host=parsed.hostname or "127.0.0.1", port=parsed.port or 8000,
                                   ssl=parsed.scheme == "https", settings=chroma_settings)
    assert path is not None
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class DenseIndex:
    def __init__(self, embedder: Embedder, path: Path | None = None, url: str | None = None, collection: str = "chunks"):
        self.embedder = embedder
        self._client = open_chroma(path, url)
        # embedding_function=None: chromadb's default would download a model; we always pass vectors.
        self._col = self._client.get_or_create_collection(
            collection, embedding_function=None, metadata={"hnsw:space": "cosine"})

    def add(self, chunks: Sequence[Chunk]) -> None:
        self.add_embedded(chunks, self.embedder.embed([c.text for c in chunks]))

    def add_embedded(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Upsert: re-adding a chunk id replaces it, so a resumed ingest never duplicates."""
        for i in range(0, len(chunks), WRITE_BATCH):
            part = chunks[i:i + WRITE_BATCH]
            self._col.upsert(
                ids=[c.id for c in part],
                embeddings=vectors[i:i + WRITE_BATCH].tolist(),
                documents=[c.text for c in part],
                metadatas=[{"arxiv_id": c.arxiv_id, "level": c.level, "section": c.section[:200],
                            "page_start": c.page_start, "page_end": c.page_end} for c in part],
            )

    def remove(self, chunk_ids: Sequence[str]) -> None:
        ids = list(chunk_ids)
        for i in range(0, len(ids), WRITE_BATCH):
            self._col.delete(ids=ids[i:i + WRITE_BATCH])

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by chunk id (ids the index does not hold are left out)."""
        ids = list(chunk_ids)
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), WRITE_BATCH):
            res = self._col.get(ids=ids[i:i + WRITE_BATCH], include=["embeddings"])
            out.update({cid: np.asarray(v, dtype=np.float32) for cid, v in zip(res["ids"], res["embeddings"])})
        return out

    def search(self, query: str, k: int, arxiv_ids: Sequence[str] | None = None,
               levels: Sequence[int] | None = (0,)) -> list[tuple[str, float]]:
        return self.search_vector(query_vector(self.embedder, query), k, arxiv_ids, levels)

    def search_vector(self, vector: np.ndarray, k: int, arxiv_ids: Sequence[str] | None = None,
                      levels: Sequence[int] | None = (0,)) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) pairs, best first."""
        from chromadb.errors import InternalError

        try:
            return self._search_vector(vector, k, arxiv_ids, levels)
        except InternalError as exc:
            # Another process's first ingest has rows in SQLite but no vector segment on disk yet (chromadb
            # flushes it in batches): to a reader in this process the index holds nothing searchable so far.
            if "Nothing found on disk" in str(exc):
                return []
            raise

    def _search_vector(self, vector: np.ndarray, k: int, arxiv_ids: Sequence[str] | None,
                       levels: Sequence[int] | None) -> list[tuple[str, float]]:
        total = self.count()
        if total == 0:
            return []
        query = [np.asarray(vector, dtype=np.float32).tolist()]
        if not arxiv_ids and levels is not None:
            # chromadb pre-filters a `where` through SQLite over every row: 21 ms against 1.3 ms unfiltered
            # on 7k chunks. Level 0 is nearly everything, so filter the nearest 2k here and fall back to
            # the filtered query only when tree summaries crowd out the leaves.
            res = self._col.query(query_embeddings=query, n_results=min(2 * k, total), include=["distances", "metadatas"])
            wanted = set(levels)
            found = [(cid, 1.0 - float(d)) for cid, d, meta in zip(res["ids"][0], res["distances"][0], res["metadatas"][0])
                     if (meta or {}).get("level", 0) in wanted]
            if len(found) >= k or len(res["ids"][0]) == total:
                return found[:k]
        res = self._col.query(query_embeddings=query, n_results=k, where=_where(arxiv_ids, levels), include=["distances"])
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0])]

    def ids_of(self, arxiv_id: str) -> list[str]:
        return list(self._col.get(where={"arxiv_id": arxiv_id}, include=[])["ids"])

    def count(self) -> int:
        return self._col.count()

    def all_ids(self) -> dict[str, str]:
        """Every chunk id the collection holds -> its arXiv id (`indexes.health` compares them with the store)."""
        out: dict[str, str] = {}
        offset = 0
        while True:
            res = self._col.get(include=["metadatas"], limit=WRITE_BATCH * 5, offset=offset)
            out.update({cid: str((meta or {}).get("arxiv_id", "")) for cid, meta in zip(res["ids"], res["metadatas"])})
            if len(res["ids"]) < WRITE_BATCH * 5:
                return out
            offset += len(res["ids"])


def query_vector(embedder: Embedder, query: str) -> np.ndarray:
    """The query's pooled vector, through the embedder's query cache when it has one (see `encode_query`)."""
    encode_query = getattr(embedder, "encode_query", None)
    return encode_query(query)[0] if encode_query else embedder.embed([query])[0]


def _where(arxiv_ids: Sequence[str] | None, levels: Sequence[int] | None) -> dict | None:
    clauses = []
    if arxiv_ids:
        ids = list(arxiv_ids)
        clauses.append({"arxiv_id": ids[0]} if len(ids) == 1 else {"arxiv_id": {"$in": ids}})
    if levels is not None:
        lv = list(levels)
        clauses.append({"level": lv[0]} if len(lv) == 1 else {"level": {"$in": lv}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
