"""Late-interaction index on colbert-ai (PLAID), keyed by chunk id, on the CPU.

Layout (see `VersionedDir`): ``CURRENT`` names the live version folder ``v<n>``, a complete colbert-ai
index (centroids, residual codes, IVF) plus ``pids.json`` (chunk id and arXiv id per passage id, null
once removed), ``texts.jsonl`` (for a rebuild without the store) and ``manifest.json``. Builds and updates
go into a new folder swapped in at the end, so a killed one leaves the previous version usable.

Passages are encoded once: by the dense embedder's forward pass when it has this checkpoint's weights
(the offline default), kept in ``encodings/`` until a committed version holds them (encodings.py), so a
build killed late resumes without encoding again. Incremental add uses colbert-ai's ``IndexUpdater``
(compress with the existing centroids, append to the IVF; internals in plaid.py); past
``rebuild_growth`` times its size at the last full build, an add re-trains the centroids instead.
colbert-ai compiles C++ extensions on first use (cached under ~/.cache/torch_extensions).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from foundation.types import Chunk
from indexes.store import IndexMismatch
from indexes.versioned import VersionedDir
from indexes.colbert.checkpoint import OFFLINE_CHECKPOINT, is_offline_name, resolve_checkpoint, shares_weights
from indexes.colbert.encodings import EncodingSpool, SharedEncoder, encode_passages
from indexes.colbert.meta import after_update, build_manifest, live_passages, write_meta
# The colbert-ai internals live in plaid.py.
from indexes.colbert.plaid import (CHUNK_PASSAGES, CODEC_FILES, PassageEncoder, PlaidBuilder, Progress,  # noqa: F401
                                   SearcherView, colbert_config, compile_extensions, loud_progress, make_updater, provenance_digest,
                                   quiet_colbert, torch_threads, write_updated_index)

FORMAT_VERSION = 1
EXACT_SCOPE_LIMIT = 2000  # scoped searches over at most this many passages score them all exactly


class ColBERTIndex:
    """PLAID index over chunks; implements `Index` (add / remove / search), persisted under `path`.

    checkpoint: ``"offline-minilm-identity"`` (default: MiniLM with an identity projection, built
    on first use by `indexes.colbert.checkpoint`), a local checkpoint folder, or a hub name such
    as ``colbert-ir/colbertv2.0`` for users who are online. An index built with one checkpoint
    refuses to open with another. encoder: the dense embedder; when it has the checkpoint's
    weights, queries and chunks are encoded once for both indexes (encodings.py).
    """

    def __init__(self, path: Path, checkpoint: str = OFFLINE_CHECKPOINT, *, cache_dir: Path | None = None,
                 nbits: int = 2, partitions_factor: float = 4.0, kmeans_niters: int = 4, ncells: int = 1,
                 centroid_score_threshold: float = 0.5, ndocs: int = 128, query_maxlen: int | None = None,
                 query_augmentation: bool | None = None, rebuild_growth: float = 4.0, index_bsize: int = 32,
                 search_threads: int | None = 1, seed: int = 12345, verbose: int = 0, encoder=None):
        self.path = Path(path)
        self.checkpoint_name = checkpoint or OFFLINE_CHECKPOINT
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.nbits, self.partitions_factor, self.kmeans_niters = nbits, partitions_factor, kmeans_niters
        self.ncells, self.centroid_score_threshold, self.ndocs = ncells, centroid_score_threshold, ndocs  # ndocs 128 (colbert-ai: 256): dev evidence@10 as at 256; 64 lost a question at the cut
        self.query_maxlen = query_maxlen
        # colbert-ai pads queries with [MASK] tokens whose outputs a trained ColBERT learned to use as
        # soft expansions; the untrained MiniLM's [MASK] outputs are noise that swamp short queries.
        self.query_augmentation = (not is_offline_name(checkpoint)) if query_augmentation is None else query_augmentation
        self.rebuild_growth, self.index_bsize, self.search_threads = rebuild_growth, index_bsize, search_threads
        self.seed, self.verbose = seed, verbose
        self.shared = SharedEncoder(encoder) if shares_weights(self.checkpoint_name, encoder) else None
        self.spool = EncodingSpool(self.path / "encodings")
        self._dir = VersionedDir(self.path)
        self._lock = threading.RLock()
        self._checkpoint_path: str | None = None
        self._configs: dict = {}
        self._model = None  # colbert-ai Checkpoint, loaded once
        self._scorer = None  # colbert-ai IndexScorer of the loaded version (see _ranker)
        self._scorer_folder: Path | None = None  # the version whose scorer is still to load
        self._loaded: str | None = None
        self._manifest: dict = {}
        self._ids: list[str | None] = []
        self._arxiv: list[str | None] = []
        self._pid_of: dict[str, int] = {}
        self.last_stats: dict[str, float | int | str] = {}
        self._refresh()

    @property
    def _ranker(self):
        """colbert-ai's IndexScorer of the loaded version (None when empty), loaded on first use."""
        for attempt in range(3):
            if self._scorer is not None or self._scorer_folder is None:
                break
            from colbert.search.index_storage import IndexScorer

            try:
                compile_extensions(self.verbose)  # the scorer's C++ parts, compiled once (setup does it)
                with quiet_colbert(self.verbose):
                    self._scorer = IndexScorer(str(self._scorer_folder), use_gpu=False, load_index_with_mmap=False)
                self._scorer_folder = None
            except FileNotFoundError:  # writers replaced that version (twice) since it was read: take the live one
                if attempt == 2:
                    raise
                self._loaded = None
                self._refresh()
        return self._scorer

    @_ranker.setter
    def _ranker(self, scorer) -> None:
        self._scorer, self._scorer_folder = scorer, None

    # ------------------------------------------------------------------ the Index protocol
    def add(self, chunks: Sequence[Chunk], progress: Progress | None = None) -> None:
        """Index chunks not indexed yet (known ids are skipped). Incremental unless the index is
        empty or has outgrown its centroids (see `rebuild_growth`)."""
        with self._lock, self._dir.lock():
            self._refresh()
            new = [c for c in dict((c.id, c) for c in chunks).values() if c.id not in self._pid_of]
            if not new:
                return
            self.spool = EncodingSpool(self.spool.folder)  # another process (an ingest) may have written it
            live = self._live_count()
            at_build = self._manifest.get("embeddings_at_build") or 0
            est_after = self._manifest.get("num_embeddings", 0) + sum(c.n_tokens or len(c.text) // 5 for c in new)
            if live == 0 or self._ranker is None:
                self._full_build(new, progress, reason="first build")
            elif self.shared is not None and not self._shares():
                self._full_build(self._live_passages() + [(c.id, c.arxiv_id, c.text) for c in new], progress,
                                 reason="one encoder pass shared with the dense index")
            elif self.rebuild_growth and at_build and est_after > self.rebuild_growth * at_build:
                old = self._live_passages()
                self._full_build(old + [(c.id, c.arxiv_id, c.text) for c in new], progress,
                                 reason=f"grew past {self.rebuild_growth}x its size at the last build")
            else:
                self._incremental(new, [], progress)
            self.spool.prune(set(self._pid_of))

    def remove(self, chunk_ids: Sequence[str]) -> None:
        with self._lock, self._dir.lock():
            self._refresh()
            pids = sorted({self._pid_of[c] for c in chunk_ids if c in self._pid_of})
            self.spool.prune(set(chunk_ids) | set(self._pid_of))
            if not pids:
                return
            if len(pids) == self._live_count():
                self._write_empty()
                return
            self._incremental([], pids, None)

    def search(self, query: str, k: int, arxiv_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        import torch

        with self._lock:
            self._refresh()
            if self._ranker is None or k <= 0:
                return []
            if arxiv_ids is None:
                return self._rank(query, k)
            wanted = set(arxiv_ids)
            allowed = [p for p, a in enumerate(self._arxiv) if a in wanted and self._ids[p] is not None]
            if not allowed:
                return []
            if len(allowed) <= EXACT_SCOPE_LIMIT:
                return self._rank(query, k, pids=allowed)
            allowed_t = torch.tensor(allowed, dtype=torch.int32)
            return self._rank(query, k, filter_fn=lambda c: c[torch.isin(c, allowed_t.to(c.dtype))])

    def rerank(self, query: str, chunk_ids: Sequence[str]) -> list[tuple[str, float]]:
        """Exact MaxSim of the query against these chunks only (ids the index lacks are left out), best
        first. Hybrid search has the other retrievers propose candidates and ColBERT order them: scoring
        ~50 passages skips PLAID's candidate generation over the whole index, most of its time."""
        with self._lock:
            self._refresh()
            pids = sorted({self._pid_of[c] for c in chunk_ids if c in self._pid_of})
            if self._ranker is None or not pids:
                return []
            return self._rank(query, len(pids), pids=pids)

    def _rank(self, query: str, k: int, **scope) -> list[tuple[str, float]]:
        """colbert-ai's ranking of the whole index, or of `pids` / `filter_fn`'s passages, as (chunk id, score)."""
        import torch

        config = self._search_config(k)
        with quiet_colbert(self.verbose), torch.inference_mode(), torch_threads(self.search_threads):
            pids, scores = self._ranker.rank(config, self.encode_query(query), **scope)
        out = []
        for pid, score in zip(pids, scores):
            cid = self._ids[pid] if pid < len(self._ids) else None
            if cid is not None:
                out.append((cid, float(score)))
                if len(out) == k:
                    break
        return out

    def encode_query(self, query: str):
        """The query's token vectors, (1, n, dim); without [MASK] padding unless query_augmentation."""
        import torch

        if self._shares():
            return torch.from_numpy(self.shared.query(query)).unsqueeze(0)
        tokenizer = self.model.query_tokenizer
        with torch.inference_mode():
            ids, mask = tokenizer.tensorize([query])
            Q = self.model.query(ids, mask)
        if not self.query_augmentation:
            Q = Q[:, ids[0] != tokenizer.mask_token_id]
        return Q

    # ------------------------------------------------------------------ encoding
    def stage(self, chunks: Sequence[Chunk], tokens: Sequence, input_ids: Sequence) -> None:
        """Keep chunks' token vectors from the shared encoder's pass until a build uses them."""
        self.spool.put([c.id for c in chunks], self.shared.docs_from(tokens, input_ids))

    def _shares(self) -> bool:
        """Whether the live version was encoded by the shared pass (indexes built before it keep colbert-ai's)."""
        return self.shared is not None and (self._ranker is None or self._manifest.get("encoding") == "shared")

    def _encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        if self._shares():
            return self.shared.docs(texts)
        import torch
        from colbert.indexing.collection_encoder import CollectionEncoder

        with quiet_colbert(self.verbose):
            embs, doclens = CollectionEncoder(self._base_config(), self.model).encode_passages(texts)
        return [v.numpy() for v in torch.split(embs.half(), doclens)]

    # ------------------------------------------------------------------ extras
    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return self._live_count()

    def chunk_ids(self) -> list[str]:
        with self._lock:
            self._refresh()
            return [c for c in self._ids if c is not None]

    def rebuild(self, chunks: Sequence[Chunk] | None = None, progress: Progress | None = None) -> None:
        """Full build from scratch (new centroids): from `chunks`, or from the stored passages."""
        with self._lock, self._dir.lock():
            self._refresh()
            if chunks is None:
                passages = self._live_passages()
            else:
                passages = [(c.id, c.arxiv_id, c.text) for c in dict((c.id, c) for c in chunks).values()]
            if passages:
                self._full_build(passages, progress, reason="rebuild")
            else:
                self._write_empty()

    def info(self) -> dict:
        with self._lock:
            self._refresh()
            return {**self._manifest, "version": self._loaded, "path": str(self.path)}

    @property
    def checkpoint_path(self) -> str:
        if self._checkpoint_path is None:
            self._checkpoint_path = resolve_checkpoint(self.checkpoint_name, self.cache_dir)
            if Path(self._checkpoint_path).exists():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return self._checkpoint_path

    @property
    def model(self):
        """colbert-ai's Checkpoint (encoder + tokenizers), loaded on first use."""
        if self._model is None:
            from colbert.modeling.checkpoint import Checkpoint

            with quiet_colbert(self.verbose):
                self._model = Checkpoint(self.checkpoint_path, colbert_config=self._base_config(), verbose=self.verbose)
        return self._model

    # ------------------------------------------------------------------ configuration
    def _base_config(self, **extra):
        return colbert_config(self.checkpoint_path, self.path / ".colbert-run", self.query_maxlen, nbits=self.nbits,
                              kmeans_niters=self.kmeans_niters, index_bsize=self.index_bsize, **extra)

    def _search_config(self, k: int):
        ndocs = max(self.ndocs, 4 * k)
        config = self._configs.get(ndocs)
        if config is None:
            config = self._configs[ndocs] = self._base_config()
            config.configure(ncells=self.ncells, centroid_score_threshold=self.centroid_score_threshold, ndocs=ndocs)
        return config

    def _identity(self) -> dict:
        return {"checkpoint": "offline" if is_offline_name(self.checkpoint_name) else self.checkpoint_name,
                "nbits": self.nbits, "format": FORMAT_VERSION}

    # ------------------------------------------------------------------ loading
    def _live_count(self) -> int:
        return len(self._pid_of)

    def _live_passages(self) -> list[tuple[str, str, str]]:
        return live_passages(self._dir.current(), self._ids, self._arxiv)

    def _refresh(self) -> None:
        """Load the live version if another one is held in memory (another process may have written it)."""
        name = self._dir.current_name()
        if name == self._loaded and (name is None or self._manifest):
            return
        self._dir.load_current(self._load, self._set_empty)

    def _set_empty(self, name: str | None = None, manifest: dict | None = None) -> None:
        self._ranker, self._ids, self._arxiv, self._pid_of = None, [], [], {}
        self._loaded, self._manifest = name, manifest or {}

    def _load(self, folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        recorded = {k: manifest.get(k) for k in self._identity()}
        if recorded != self._identity():
            raise IndexMismatch(
                f"The ColBERT index in {self.path} was built with {recorded}; these settings ask for "
                f"{self._identity()}. Rebuild it (`paper-assistant doctor --repair` after changing colbert_checkpoint back, or a new --home) or use the same checkpoint.")
        if manifest.get("empty"):
            self._set_empty(folder.name, manifest)
            return
        meta = json.loads((folder / "pids.json").read_text())
        # colbert-ai's scorer loads on first search or update (_ranker): importing colbert-ai alone takes ~18 s,
        # which `papers`, `remove` or a bm25 search, all of which open the index to count it, need not pay.
        self._scorer, self._scorer_folder = None, folder
        self._ids, self._arxiv = list(meta["ids"]), list(meta["arxiv_ids"])
        self._pid_of = {cid: p for p, cid in enumerate(self._ids) if cid is not None}
        self._loaded, self._manifest = folder.name, manifest

    # ------------------------------------------------------------------ writing
    def _write_empty(self) -> None:
        with self._dir.building() as build:
            manifest = {**self._identity(), "empty": True, "num_passages": 0, "num_embeddings": 0,
                        "updated_at": time.time()}
            (build / "manifest.json").write_text(json.dumps(manifest, indent=2))
            final = self._dir.commit(build)
        self._set_empty(final.name, manifest)

    def _full_build(self, passages: list, progress: Progress | None, reason: str) -> None:
        """passages: (chunk id, arxiv id, text) or Chunk; builds a fresh index and swaps it in."""
        import torch

        passages = [(p.id, p.arxiv_id, p.text) if isinstance(p, Chunk) else p for p in passages]
        progress = loud_progress(progress)
        t0 = time.perf_counter()
        with self._dir.building() as build:
            config = self._base_config(index_path=str(build))
            self._ranker, self._manifest = None, {}  # a full build encodes as a fresh index would (_shares)
            builder = PlaidBuilder(config, [t for _, _, t in passages], lambda pids: encode_passages(
                [passages[i] for i in pids], self.spool, self._encode_texts), self.partitions_factor, self.seed,
                progress, self.verbose)
            with quiet_colbert(self.verbose), torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                builder.run(None)
            meta = json.loads((build / "metadata.json").read_text())
            manifest = build_manifest(self._identity(), self.checkpoint_path, provenance_digest(self.checkpoint_path),
                                      len(passages), meta, reason, time.perf_counter() - t0, self._shares())
            write_meta(build, [p[0] for p in passages], [p[1] for p in passages],
                             [json.dumps(p[2]) + "\n" for p in passages], manifest)
            shutil.rmtree(build / ".colbert-run", ignore_errors=True)
            final = self._dir.commit(build)
        self.last_stats = {"op": "build", "reason": reason, "passages": len(passages),
                           "seconds": round(time.perf_counter() - t0, 2)}
        self._load(final)

    def _incremental(self, new: Sequence[Chunk], remove_pids: list[int], progress: Progress | None) -> None:
        """Add and/or remove passages with colbert-ai's IndexUpdater on the loaded index, then write
        the result as a new version (unchanged chunk files hard-linked) and swap it in."""
        import torch

        progress = loud_progress(progress)
        t0 = time.perf_counter()
        old = self._dir.current()
        assert old is not None and self._ranker is not None
        config = self._base_config(index_path=str(old))
        searcher = SearcherView(str(old), self._ranker)
        with quiet_colbert(self.verbose), torch.inference_mode():
            updater = make_updater(config, searcher)
            updater.has_checkpoint = True
            updater.encoder = PassageEncoder(lambda items: encode_passages(items, self.spool, self._encode_texts),
                                             {c.id: (c.id, c.arxiv_id, c.text) for c in new})
            old_n = len(self._ranker.doclens)
            if remove_pids:
                updater.remove(remove_pids)
            t_enc = time.perf_counter()
            for i in range(0, len(new), 256):
                updater.add([c.id for c in new[i:i + 256]])
                if progress:
                    progress(min(i + 256, len(new)), len(new))
            t_enc = time.perf_counter() - t_enc

        with self._dir.building() as build:
            stats = write_updated_index(old, build, self._ranker, updater, old_n, set(remove_pids))
            ids, arxiv, texts = after_update(old, self._ids, self._arxiv, new, remove_pids)
            manifest = {**self._manifest, "num_passages": sum(1 for c in ids if c is not None),
                        "num_embeddings": stats["num_embeddings"], "updated_at": time.time()}
            manifest.pop("empty", None)
            write_meta(build, ids, arxiv, texts, manifest)
            final = self._dir.commit(build)
        self.last_stats = {"op": "update", "added": len(new), "removed": len(remove_pids),
                           "encode_seconds": round(t_enc, 2), "seconds": round(time.perf_counter() - t0, 2),
                           **stats}
        self._load(final)

