"""ColBERT token vectors taken from the dense embedder's forward pass, and a spool that keeps them on disk
until a ColBERT build has used them.

The offline checkpoint is MiniLM's weights with an identity projection (checkpoint.py), so the token
vectors the dense embedder computes anyway are ColBERT's document vectors: one forward pass per chunk
feeds both indexes. Two differences from colbert-ai's own encoder, kept on both the document and the
query side so that scores stay comparable: no [D]/[Q] marker token is inserted (the plain MiniLM
input), and a query is never padded with [MASK] tokens (ColBERTIndex already dropped them for this
checkpoint). Punctuation is masked out of documents as colbert-ai does.

Ingest writes each batch's vectors to the spool as soon as they are computed (one file per batch,
written to a temp name and renamed), so a build killed late in an ingest resumes from them instead of
encoding every chunk again; a file is deleted once every chunk in it is in a committed index version.
"""
from __future__ import annotations

import hashlib
import os
import string
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

SPOOL_FORMAT = 1


def punctuation_ids(tokenizer) -> set[int]:
    """The token ids colbert-ai masks out of documents (mask_punctuation): each punctuation symbol's first id."""
    return {tokenizer.encode(symbol, add_special_tokens=False)[0] for symbol in string.punctuation}


def doc_vectors(tokens: np.ndarray, ids: np.ndarray, skip: set[int]) -> np.ndarray:
    """A chunk's ColBERT document vectors (float16): its token vectors without punctuation."""
    keep = ~np.isin(ids, np.fromiter(skip, dtype=np.int64, count=len(skip)))
    return np.ascontiguousarray(tokens[keep], dtype=np.float16)


class SharedEncoder:
    """ColBERT vectors from the dense embedder's forward pass (`SentenceTransformerEmbedder.encode`)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self._skip: set[int] | None = None

    @property
    def skip(self) -> set[int]:
        if self._skip is None:
            self._skip = punctuation_ids(self.embedder.tokenizer)
        return self._skip

    def docs_from(self, tokens: Sequence[np.ndarray], ids: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [doc_vectors(t, i, self.skip) for t, i in zip(tokens, ids)]

    def docs(self, texts: Sequence[str]) -> list[np.ndarray]:
        _, tokens, ids = self.embedder.encode(texts)
        return self.docs_from(tokens, ids)

    def query(self, text: str) -> np.ndarray:
        """The query's token vectors (float32, [CLS] and [SEP] included, as colbert-ai keeps them)."""
        return self.embedder.encode_query(text)[1]


def encode_passages(passages: Sequence[tuple[str, str, str]], spool: "EncodingSpool", encode_texts, batch: int = 256):
    """(float16 vectors of every (chunk id, arxiv id, text) passage, flattened, as a torch tensor; doclens):
    from the spool where it holds them, else encode_texts(texts) -> vectors, spooled batch by batch so a
    killed build keeps what it encoded."""
    import torch

    got = spool.get(p[0] for p in passages)
    todo = [p for p in passages if p[0] not in got]
    for i in range(0, len(todo), batch):
        part = todo[i:i + batch]
        vectors = encode_texts([p[2] for p in part])
        spool.put([p[0] for p in part], vectors)
        got.update(zip((p[0] for p in part), vectors))
    ordered = [got[p[0]] for p in passages]
    flat = np.concatenate(ordered) if ordered else np.zeros((0, 1), dtype=np.float16)
    return torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float16)), [len(v) for v in ordered]


class EncodingSpool:
    """Per-chunk document vectors on disk, keyed by chunk id, one ``<digest>.npz`` file per written batch."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._files: dict[Path, list[str]] | None = None  # file -> its chunk ids, read lazily
        self._where: dict[str, Path] = {}  # chunk id -> (the newest) file holding it

    def put(self, chunk_ids: Sequence[str], vectors: Sequence[np.ndarray]) -> None:
        if not chunk_ids:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1("\n".join(chunk_ids).encode()).hexdigest()[:16]
        final = self.folder / f"{digest}.npz"
        tmp = self.folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        doclens = np.asarray([len(v) for v in vectors], dtype=np.int64)
        flat = np.concatenate(list(vectors)) if len(vectors) else np.zeros((0, 1), dtype=np.float16)
        with open(tmp, "wb") as fh:
            np.savez(fh, format=np.int64(SPOOL_FORMAT), ids=np.asarray(chunk_ids, dtype=str), doclens=doclens,
                     vectors=flat.astype(np.float16))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        if self._files is not None:
            self._files[final] = list(chunk_ids)
            self._where.update((cid, final) for cid in chunk_ids)

    def _index(self) -> dict[str, Path]:
        if self._files is None:
            self._files, self._where = {}, {}
            for path in sorted(self.folder.glob("*.npz"), key=lambda p: p.stat().st_mtime):
                got = self._read(path, vectors=False)
                if got is not None:
                    self._files[path] = got[0]
                    self._where.update((cid, path) for cid in got[0])
        return self._where

    @staticmethod
    def _read(path: Path, vectors: bool = True):
        """(ids, doclens, vectors) of one file, or None when it is unreadable (it is then deleted)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != SPOOL_FORMAT:
                    raise ValueError("other format")
                ids = [str(x) for x in data["ids"]]
                return ids, data["doclens"], (data["vectors"] if vectors else None)
        except FileNotFoundError:
            return None
        except Exception:  # a torn or foreign file: the vectors are recomputed, nothing is lost
            path.unlink(missing_ok=True)
            return None

    def get(self, chunk_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those chunk ids that the spool holds."""
        where = self._index()
        by_file: dict[Path, set[str]] = {}
        for cid in chunk_ids:
            if cid in where:
                by_file.setdefault(where[cid], set()).add(cid)
        out: dict[str, np.ndarray] = {}
        for path, wanted in by_file.items():
            got = self._read(path)
            if got is None:
                continue
            ids, doclens, flat = got
            offsets = np.concatenate([[0], np.cumsum(doclens)])
            for i, cid in enumerate(ids):
                if cid in wanted:
                    out[cid] = flat[offsets[i]:offsets[i + 1]]
        return out

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self._index()

    def __len__(self) -> int:
        return len(self._index())

    def prune(self, done: set[str]) -> int:
        """Delete the files all of whose chunks are in `done` (and leftovers of killed writers); returns files deleted."""
        for tmp in self.folder.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
        self._index()
        assert self._files is not None
        deleted = 0
        for path, ids in list(self._files.items()):
            if all(cid in done for cid in ids):
                path.unlink(missing_ok=True)
                deleted += 1
                del self._files[path]
                for cid in ids:
                    if self._where.get(cid) == path:
                        del self._where[cid]
        return deleted
