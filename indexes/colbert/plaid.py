"""colbert-ai (PLAID) internals that `indexes.colbert.ColBERTIndex` drives: a CPU-friendly
CollectionIndexer, the IndexUpdater with a vectorised IVF append, writing an updated index as a new
version folder, and the context managers that keep colbert-ai and torch quiet and single-threaded.

colbert-ai, torch and faiss are imported inside the functions: importing this module stays cheap."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import shutil
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator

from indexes.colbert.build_locks import clear_stale_build_locks
from indexes.embedder import torch_threads  # noqa: F401  (re-exported: ColBERTIndex searches with it)

CHUNK_PASSAGES = 2000  # passages per colbert-ai chunk file
CODES_BLOCK = 1024  # vectors per nearest-centroid block: a 2,048 x 1,024 score matrix stays in cache
CODEC_FILES = ("centroids.pt", "avg_residual.pt", "buckets.pt", "plan.json")

Progress = Callable[[int, int], None]


@contextlib.contextmanager
def quiet_colbert(verbose: int) -> Iterator[None]:
    """colbert-ai prints progress to stdout/stderr and warns about CUDA autocast: hide both unless verbose.
    Every call into colbert-ai passes here and any may compile its C++ extensions, so a build lock left by a
    killed process is cleared first (else the call would wait on it forever)."""
    clear_stale_build_locks()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        if verbose:
            yield
            return
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield


def colbert_config(checkpoint_path: str, root: Path, query_maxlen: int | None, **settings):
    """colbert-ai's config: the checkpoint's own, with this index's settings (nbits, k-means, batch) on top."""
    from colbert.infra import ColBERTConfig

    mine = ColBERTConfig(checkpoint=checkpoint_path, avoid_fork_if_possible=True, nranks=1, gpus=0, root=str(root),
                         **settings)
    if query_maxlen:
        mine.configure(query_maxlen=query_maxlen)
    return ColBERTConfig.from_existing(ColBERTConfig.load_from_checkpoint(checkpoint_path), mine)


def compile_extensions(verbose: int = 0) -> None:
    """Compile (or load, when compiled already) colbert-ai's C++ extensions: the scorer's segmented MaxSim,
    candidate filtering and residual decompression. Once per environment, 106 s on 2 cores; setup calls
    it so that a user's first search does not wait for it."""
    from colbert.modeling.colbert import ColBERT
    from colbert.search.index_storage import IndexScorer

    with quiet_colbert(verbose):
        ColBERT.try_load_torch_extensions(False)
        IndexScorer.try_load_torch_extensions(False)


def loud_progress(progress: Progress | None) -> Progress | None:
    """A progress callback that prints to the streams of its caller even inside `quiet_colbert`."""
    if progress is None:
        return None
    out, err = sys.stdout, sys.stderr

    def call(done: int, total: int) -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            progress(done, total)

    return call


def provenance_digest(checkpoint_path: str) -> str | None:
    prov = Path(checkpoint_path) / "PROVENANCE.json"
    if prov.exists():
        return json.loads(prov.read_text()).get("weights_sha256")
    return None


class SearcherView:
    """What IndexUpdater needs of a Searcher: the index path and the ranker."""

    def __init__(self, index: str, ranker):
        self.index = index
        self.ranker = ranker


def blocked_codes() -> None:
    """Make colbert-ai's CPU nearest-centroid step (compressing every token vector at build and update) work in
    small blocks. The stock one scores 262,144 vectors against all centroids at once, a 2 GB matrix that is
    written and read back from memory; blocks of 1,024 give the same codes 1.6x faster (4.0 vs 6.3 s per
    262,144 vectors with 2,048 centroids, 2 cores)."""
    from colbert.indexing.codecs.residual import ResidualCodec

    stock = ResidualCodec.compress_into_codes
    if getattr(stock, "blocked", False):
        return

    def compress_into_codes(self, embs, out_device):
        if self.use_gpu:
            return stock(self, embs, out_device)
        import torch

        codes = torch.empty(embs.size(0), dtype=torch.int64)
        centroids_t = self.centroids.float().T.contiguous()
        for start in range(0, embs.size(0), CODES_BLOCK):
            block = embs[start:start + CODES_BLOCK].float()
            codes[start:start + CODES_BLOCK] = (block @ centroids_t).argmax(dim=1)
        return codes.to(device=out_device)

    compress_into_codes.blocked = True
    compress_into_codes.stock = stock
    ResidualCodec.compress_into_codes = compress_into_codes


def PlaidBuilder(*args, **kwargs):
    """colbert-ai's CollectionIndexer (k-means centroids, residual compression, IVF), driven in-process.

    Differences from the stock indexer, for CPU: the k-means sample is a subset of the passages
    (the stock one encodes *every* passage for the sample when there are fewer than ~100k, then
    encodes them all again); the sampled passages' embeddings are reused when indexing, so each
    passage is encoded once; there are fewer centroids (partitions_factor * sqrt(embeddings)
    instead of 16 * sqrt), which keeps k-means to seconds; and faiss runs quietly.
    """
    from colbert.indexing.collection_indexer import CollectionIndexer

    blocked_codes()
    cls = type("PlaidBuilder", (_PlaidBuilderMixin, CollectionIndexer), {})
    return cls(*args, **kwargs)


class PassageEncoder:
    """What colbert-ai's IndexUpdater needs of an encoder; the "passages" it is handed are keys of `items`
    (chunk ids), encoded by `encode(list of items) -> (flat vectors, doclens)`."""

    def __init__(self, encode: Callable, items: dict):
        self.encode, self.items = encode, items

    def encode_passages(self, keys):
        embs, doclens = self.encode([self.items[k] for k in keys])
        return embs.float(), doclens


class _PlaidBuilderMixin:
    def __init__(self, config, texts: list[str], encode: Callable, partitions_factor: float, seed: int,
                 progress: Progress | None, verbose: int):
        from colbert.data.collection import Collection
        from colbert.indexing.index_saver import IndexSaver

        self.verbose = verbose
        self.config = config
        self.rank, self.nranks = 0, 1
        self.use_gpu = False
        self.collection = Collection(data=list(texts))
        self.encode = encode  # passage numbers -> (flat float16 vectors, doclens)
        self.saver = IndexSaver(config)
        self.partitions_factor = partitions_factor
        self.seed = seed
        self.progress = progress
        self._memo: dict[int, object] = {}
        self._done = 0

    def _encode(self, pids: list[int]):
        embs, doclens = self.encode(pids)
        self._done += len(pids)
        if self.progress:
            self.progress(self._done, len(self.collection))
        return embs.half(), doclens

    def setup(self):
        import torch

        n = len(self.collection)
        self.num_chunks = int(math.ceil(n / CHUNK_PASSAGES))
        est_doclen = 180.0
        partitions = self._partitions(n * est_doclen)
        n_sample = min(n, max(64, int(math.ceil(64 * partitions / est_doclen))))
        sampled = sorted(random.Random(self.seed).sample(range(n), n_sample))
        embs, doclens = self._encode(sampled)
        offset = 0
        for pid, dl in zip(sampled, doclens):
            self._memo[pid] = embs[offset:offset + dl]
            offset += dl
        self.avg_doclen_est = sum(doclens) / max(1, len(doclens))
        self.num_embeddings_est = n * self.avg_doclen_est
        self.num_partitions = min(self._partitions(self.num_embeddings_est), _pow2_floor(max(1, embs.size(0) // 40)))
        self.num_sample_embs = torch.tensor([embs.size(0)])
        torch.save(embs, os.path.join(self.config.index_path_, "sample.0.pt"))
        self._save_plan()

    def _train_kmeans(self, sample, shared_lists):
        import faiss
        import torch

        kmeans = faiss.Kmeans(self.config.dim, self.num_partitions, niter=self.config.kmeans_niters, gpu=False,
                              verbose=False, seed=123)
        kmeans.train(sample.float().numpy())
        return torch.nn.functional.normalize(torch.from_numpy(kmeans.centroids), dim=-1).float()

    def _partitions(self, n_embeddings: float) -> int:
        return _pow2_floor(max(2, self.partitions_factor * math.sqrt(max(1.0, n_embeddings))))

    def index(self):
        import torch

        n = len(self.collection)
        with self.saver.thread():
            for chunk_idx in range(self.num_chunks):
                lo, hi = chunk_idx * CHUNK_PASSAGES, min(n, (chunk_idx + 1) * CHUNK_PASSAGES)
                todo = [i for i in range(lo, hi) if i not in self._memo]
                fresh: dict[int, object] = {}
                if todo:
                    embs, doclens = self._encode(todo)
                    offset = 0
                    for pid, dl in zip(todo, doclens):
                        fresh[pid] = embs[offset:offset + dl]
                        offset += dl
                parts = [self._memo.pop(i) if i in self._memo else fresh[i] for i in range(lo, hi)]
                self.saver.save_chunk(chunk_idx, lo, torch.cat(parts), [int(p.size(0)) for p in parts])


def _pow2_floor(x: float) -> int:
    return int(2 ** math.floor(math.log2(max(1.0, x))))


def _updater_class():
    from colbert.index_updater import IndexUpdater

    class Updater(IndexUpdater):
        """IndexUpdater with a vectorised IVF append (the stock one rebuilds the IVF as a Python
        list once per added passage: seconds per paper on the 53-paper index), and the IVF's
        zero padding trimmed on load (the stock remove counts padding as passage 0 and fails)."""

        def _load_disk_ivf(self):
            super()._load_disk_ivf()
            self.curr_ivf = self.curr_ivf[: int(self.curr_ivf_lengths.sum())].clone()

        def update_searcher(self, compressed_embs, doclens, curr_pid):
            import torch
            from colbert.search.strided_tensor import StridedTensor

            ranker = self.searcher.ranker
            ranker.embeddings.codes = torch.cat(
                (ranker.embeddings.codes[:-512], compressed_embs.codes, ranker.embeddings.codes[-512:]))
            ranker.embeddings.residuals = torch.cat(
                (ranker.embeddings.residuals[:-512], compressed_embs.residuals, ranker.embeddings.residuals[-512:]))
            ranker.doclens = torch.cat((ranker.doclens, torch.tensor(doclens, dtype=ranker.doclens.dtype)))

            num_partitions = self.curr_ivf_lengths.size(0)
            shift = 32
            new_pids = torch.repeat_interleave(torch.arange(curr_pid, curr_pid + len(doclens), dtype=torch.int64),
                                               torch.tensor(doclens, dtype=torch.int64))
            new_keys = torch.unique((compressed_embs.codes.to(torch.int64) << shift) | new_pids)
            old_cent = torch.repeat_interleave(torch.arange(num_partitions, dtype=torch.int64),
                                               self.curr_ivf_lengths.to(torch.int64))
            old_keys = (old_cent << shift) | self.curr_ivf.to(torch.int64)
            keys = torch.sort(torch.cat((old_keys, new_keys))).values
            self.curr_ivf = (keys & ((1 << shift) - 1)).to(self.curr_ivf.dtype)
            self.curr_ivf_lengths = torch.bincount(keys >> shift, minlength=num_partitions).to(self.curr_ivf_lengths.dtype)
            ranker.ivf = StridedTensor(self.curr_ivf, self.curr_ivf_lengths, use_gpu=False)
            ranker.set_embeddings_strided()

    return Updater


def make_updater(config, searcher):
    """The patched IndexUpdater on a loaded index; the caller sets its encoder (no checkpoint passed here)."""
    blocked_codes()
    return _updater_class()(config, searcher, None)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_updated_index(old: Path, build: Path, ranker, updater, old_n: int, removed: set[int]) -> dict:
    """Write the updater's in-memory index as a colbert-ai index folder: chunks without removed
    passages are hard-linked from `old`, chunks with removed passages are rewritten without their
    embeddings (doclen 0), added passages go to new chunk files, and the IVF is the updater's."""
    import torch
    from colbert.indexing.codecs.residual_embeddings import ResidualEmbeddings

    for name in CODEC_FILES:
        if (old / name).exists():
            _link_or_copy(old / name, build / name)
    metadata = json.loads((old / "metadata.json").read_text())
    doclens = ranker.doclens.tolist()
    emb_offsets = [0]
    for d in doclens:
        emb_offsets.append(emb_offsets[-1] + d)
    codes_all = ranker.embeddings.codes
    residuals_all = ranker.embeddings.residuals

    # Chunks as on disk, then the new passages in chunks of CHUNK_PASSAGES.
    chunks: list[tuple[int, int, int | None]] = []  # (first pid, n passages, old chunk idx or None)
    for idx in range(metadata["num_chunks"]):
        meta = json.loads((old / f"{idx}.metadata.json").read_text())
        chunks.append((meta["passage_offset"], meta["num_passages"], idx))
    for lo in range(old_n, len(doclens), CHUNK_PASSAGES):
        chunks.append((lo, min(CHUNK_PASSAGES, len(doclens) - lo), None))

    rewritten, linked, emb_offset = 0, 0, 0
    for new_idx, (lo, count, old_idx) in enumerate(chunks):
        hi = lo + count
        touched = old_idx is None or any(lo <= p < hi for p in removed)
        chunk_doclens = [0 if p in removed else doclens[p] for p in range(lo, hi)]
        if not touched and old_idx == new_idx:
            for suffix in (".codes.pt", ".residuals.pt"):
                _link_or_copy(old / f"{old_idx}{suffix}", build / f"{new_idx}{suffix}")
            linked += 1
        else:
            keep = [(emb_offsets[p], emb_offsets[p + 1]) for p in range(lo, hi) if p not in removed and doclens[p]]
            if keep:
                codes = torch.cat([codes_all[a:b] for a, b in keep])
                residuals = torch.cat([residuals_all[a:b] for a, b in keep])
            else:
                codes = codes_all[:0].clone()
                residuals = residuals_all[:0].clone()
            ResidualEmbeddings(codes.clone(), residuals.clone()).save(str(build / str(new_idx)))
            rewritten += 1
        n_emb = sum(chunk_doclens)
        (build / f"doclens.{new_idx}.json").write_text(json.dumps(chunk_doclens))
        (build / f"{new_idx}.metadata.json").write_text(json.dumps(
            {"passage_offset": lo, "num_passages": count, "num_embeddings": n_emb, "embedding_offset": emb_offset}))
        emb_offset += n_emb

    torch.save((updater.curr_ivf, updater.curr_ivf_lengths), build / "ivf.pid.pt")
    metadata["num_chunks"] = len(chunks)
    metadata["num_embeddings"] = emb_offset
    live = sum(1 for p in range(len(doclens)) if p not in removed)
    metadata["avg_doclen"] = emb_offset / max(1, live)
    (build / "metadata.json").write_text(json.dumps(metadata, indent=4))
    return {"num_embeddings": emb_offset, "chunks_linked": linked, "chunks_written": rewritten}
