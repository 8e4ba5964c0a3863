"""Lexical index: BM25 (bm25s) over stemmed English tokens, keyed by chunk id, persisted atomically.

bm25s has no incremental API. The index keeps each chunk's token ids (and the vocabulary) on
disk, so `add` tokenizes only the new chunks and `add`/`remove` rebuild the BM25 matrix from
the stored ids: ~0.4 s for the 53 papers' ~8,100 chunks (tokenizing them all from text would
take ~2-5 s). Every change is written to a new version folder and made live by swapping a
pointer file, so a killed writer leaves the previous version in place.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from assistant.types import Chunk

FORMAT_VERSION = 1


class VersionedDir:
    """A folder whose live content is the version folder named in ``CURRENT``.

    Writers take the lock, build a fresh ``.build-*`` folder, then `commit` it: it is renamed to
    ``v<n>`` and ``CURRENT`` is replaced atomically (os.replace). Readers read ``CURRENT`` and load
    that folder. A writer killed half-way leaves only a ``.build-*`` folder, removed by the next writer.
    The previous version is kept one generation so a reader loading it during a swap still finds it.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def current_name(self) -> str | None:
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def current(self) -> Path | None:
        name = self.current_name()
        if name is None:
            return None
        path = self.root / name
        return path if path.is_dir() else None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock (advisory, across processes); released if the process dies."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def new_build(self) -> Path:
        """A fresh folder to build the next version in (call while holding the lock)."""
        self.cleanup()
        path = self.root / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def commit(self, build: Path) -> Path:
        """Make `build` the live version; returns its final path (call while holding the lock)."""
        _fsync_tree(build)
        previous = self.current_name()
        n = 1 + max([int(p.name[1:]) for p in self.root.glob("v*") if p.name[1:].isdigit()], default=0)
        final = self.root / f"v{n:06d}"
        os.replace(build, final)
        tmp = self.root / f".CURRENT.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w") as fh:
            fh.write(final.name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.pointer)
        _fsync_dir(self.root)
        for old in self.root.glob("v*"):
            if old.name not in (final.name, previous) and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return final

    def cleanup(self) -> None:
        """Remove leftovers of killed writers (call while holding the lock)."""
        for junk in list(self.root.glob(".build-*")) + list(self.root.glob(".CURRENT.*")):
            if junk.is_dir():
                shutil.rmtree(junk, ignore_errors=True)
            else:
                junk.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


class BM25Index:
    """BM25 over chunks, stemmed English (PyStemmer) with English stopwords; implements `Index`.

    ``BM25Index(dir)`` opens (or starts) the index persisted under `dir`. Changes are written at
    once; other processes see them on their next search (the version pointer is checked).
    """

    def __init__(self, path: Path, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
                 stemmer_language: str = "english", stopwords: str = "en"):
        self.path = Path(path)
        self.params = {"k1": k1, "b": b, "method": method, "stemmer": stemmer_language, "stopwords": stopwords,
                       "format": FORMAT_VERSION}
        self._dir = VersionedDir(self.path)
        self._stemmer = None
        self._loaded: str | None = None  # name of the version folder held in memory
        self._ids: list[str] = []
        self._arxiv: np.ndarray = np.zeros(0, dtype=str)
        self._tokens: list[np.ndarray] = []
        self._vocab: list[str] = []
        self._vocab_index: dict[str, int] = {}
        self._retriever = None
        self._refresh()

    # --- the Index protocol
    def add(self, chunks: Sequence[Chunk], progress: Callable[[int, int], None] | None = None) -> None:
        """Index chunks not indexed yet (ids already present are skipped); one step, so no progress reports."""
        with self._dir.lock():
            self._refresh()
            known = set(self._ids)
            new = [c for c in dict((c.id, c) for c in chunks).values() if c.id not in known]
            if not new:
                return
            token_lists = self._tokenize([c.text for c in new])
            for chunk, toks in zip(new, token_lists):
                self._ids.append(chunk.id)
                self._tokens.append(np.asarray([self._vocab_id(t) for t in toks], dtype=np.int32))
            self._arxiv = np.concatenate([self._arxiv, np.asarray([c.arxiv_id for c in new], dtype=str)])
            self._rebuild_and_save()

    def remove(self, chunk_ids: Sequence[str]) -> None:
        with self._dir.lock():
            self._refresh()
            drop = set(chunk_ids)
            keep = [i for i, cid in enumerate(self._ids) if cid not in drop]
            if len(keep) == len(self._ids):
                return
            self._ids = [self._ids[i] for i in keep]
            self._tokens = [self._tokens[i] for i in keep]
            self._arxiv = self._arxiv[keep] if keep else np.zeros(0, dtype=str)
            self._rebuild_and_save()

    def search(self, query: str, k: int, arxiv_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        self._refresh()
        if self._retriever is None or not self._ids or k <= 0:
            return []
        toks = [self._vocab_index[t] for t in self._tokenize([query])[0] if t in self._vocab_index]
        if not toks:
            return []
        scores = self._retriever.get_scores_from_ids(toks)
        if arxiv_ids is not None:
            scores = np.where(np.isin(self._arxiv, list(arxiv_ids)), scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return []
        top = positive[np.argsort(-scores[positive], kind="stable")[:k]]
        return [(self._ids[i], float(scores[i])) for i in top]

    # --- extras
    def __len__(self) -> int:
        self._refresh()
        return len(self._ids)

    def chunk_ids(self) -> list[str]:
        self._refresh()
        return list(self._ids)

    def clear(self) -> None:
        with self._dir.lock():
            self._ids, self._tokens, self._vocab, self._vocab_index = [], [], [], {}
            self._arxiv = np.zeros(0, dtype=str)
            self._rebuild_and_save()

    # --- internals
    @property
    def stemmer(self):
        if self._stemmer is None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(self.params["stemmer"])
        return self._stemmer

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, lower=True, stopwords=self.params["stopwords"], stemmer=self.stemmer,
                              return_ids=False, show_progress=False)

    def _vocab_id(self, token: str) -> int:
        i = self._vocab_index.get(token)
        if i is None:
            i = self._vocab_index[token] = len(self._vocab)
            self._vocab.append(token)
        return i

    def _build_retriever(self):
        import bm25s

        if not self._ids:
            return None
        retriever = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        vocab = dict(self._vocab_index)
        if not vocab:
            vocab = {"": 0}  # every chunk empty after stopwords: bm25s still needs a vocabulary
        retriever.index(([t.tolist() for t in self._tokens], vocab), show_progress=False)
        return retriever

    def _rebuild_and_save(self) -> None:
        """Rebuild the matrix from stored token ids, write a new version, swap it in."""
        retriever = self._build_retriever()
        build = self._dir.new_build()
        try:
            lengths = np.asarray([len(t) for t in self._tokens], dtype=np.int64)
            flat = np.concatenate(self._tokens) if self._tokens else np.zeros(0, dtype=np.int32)
            np.save(build / "tokens.npy", flat.astype(np.int32))
            np.save(build / "lengths.npy", lengths)
            (build / "vocab.json").write_text(json.dumps(self._vocab, ensure_ascii=False))
            (build / "chunks.json").write_text(json.dumps({"ids": self._ids, "arxiv_ids": self._arxiv.tolist()}))
            (build / "manifest.json").write_text(json.dumps(
                {**self.params, "n_chunks": len(self._ids), "written_at": time.time()}, indent=2))
            final = self._dir.commit(build)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        self._retriever = retriever
        self._loaded = final.name

    def _refresh(self) -> None:
        """Load the live version if it is not the one held in memory."""
        name = self._dir.current_name()
        if name == self._loaded:
            return
        for attempt in range(3):
            folder = self._dir.current()
            if folder is None:
                self._ids, self._tokens, self._vocab, self._vocab_index = [], [], [], {}
                self._arxiv = np.zeros(0, dtype=str)
                self._retriever, self._loaded = None, None
                return
            try:
                self._load(folder)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
                time.sleep(0.05)  # swapped under us; read the pointer again

    def _load(self, folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        wanted = {k: v for k, v in self.params.items()}
        recorded = {k: manifest.get(k) for k in wanted}
        if recorded != wanted:
            from indexes.store import IndexMismatch

            raise IndexMismatch(f"BM25 index in {self.path} was built with {recorded}, asked for {wanted}")
        meta = json.loads((folder / "chunks.json").read_text())
        flat = np.load(folder / "tokens.npy")
        lengths = np.load(folder / "lengths.npy")
        self._vocab = json.loads((folder / "vocab.json").read_text())
        self._vocab_index = {t: i for i, t in enumerate(self._vocab)}
        self._ids = list(meta["ids"])
        self._arxiv = np.asarray(meta["arxiv_ids"], dtype=str)
        self._tokens = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
        self._retriever = self._build_retriever()
        self._loaded = folder.name
