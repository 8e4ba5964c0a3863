"""The embedder's transformer on onnxruntime: the same fp32 weights exported once to ONNX, run with
onnxruntime's graph optimisations (fused attention, layer norms, GELU). bench/encoders.py measures it
against torch over a library's chunks (quiet 2 cores, 1,500 chunks): batches 1.12x torch's speed, one query
2x (7.3 vs 14.5 ms), cosine to torch's vectors 1.000000. Dynamic int8 was ~2.3x but moved vectors (pooled
cosine down to 0.91, token cosine 0.68): not used.

The export is cached under the app's cache folder, named by a digest of the weights, so another model or
changed weights export again; a torn or unreadable file is exported again too.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
OPSET = 17


class OnnxUnavailable(RuntimeError):
    """This model cannot run on onnxruntime here (no exporter, an unsupported architecture)."""


def weights_digest(module) -> str:
    """sha256 over the module's parameters and buffers, in order: the same weights, the same file name."""
    import torch

    digest = hashlib.sha256(type(module).__name__.encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _last_hidden(model, names: list[str]):
    """The Hugging Face model wrapped so that the export has one output, the token embeddings."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    return LastHidden()


class OnnxTransformer:
    """Runs a sentence-transformers model's first module (its Hugging Face transformer) on onnxruntime;
    the pooling and normalising modules after it stay sentence-transformers' own."""

    def __init__(self, model, cache_dir: Path):
        self.model = model  # a SentenceTransformer
        self.cache_dir = Path(cache_dir)
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()
        self._path: Path | None = None
        hf = model[0].auto_model
        accepted = set(inspect.signature(hf.forward).parameters)
        self._sample = model.preprocess(["a sentence to trace the graph with", "another"])  # what export traces
        self.inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in self._sample and k in accepted]

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = self.cache_dir / f"{type(self.model[0].auto_model).__name__}-{weights_digest(self.model[0].auto_model)}.onnx"
        return self._path

    def export(self) -> Path:
        """Write the ONNX file (about 3 s for MiniLM) unless a copy is there; atomic, so a killed export leaves none."""
        import torch

        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
        except ImportError as exc:
            raise OnnxUnavailable("the onnx package is not installed") from exc
        if self.path.exists():
            return self.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OnnxUnavailable(f"cannot write the ONNX export to {self.path.parent}: {exc}") from exc
        args = tuple(self._sample[k] for k in self.inputs)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        hf = self.model[0].auto_model.eval()
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes on constants that are constant in BERT-style models
                torch.onnx.export(_last_hidden(hf, self.inputs), args, str(tmp), input_names=self.inputs,
                                  output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                                  dynamic_axes={k: {0: "batch", 1: "tokens"} for k in [*self.inputs, "last_hidden_state"]})
            os.replace(tmp, self.path)
        except Exception as exc:  # an architecture the exporter cannot trace: the caller runs torch instead
            raise OnnxUnavailable(f"cannot export {type(hf).__name__} to ONNX: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return self.path

    def session(self, threads: int):
        """One session per thread count (a query runs on one thread, a batch on two), built on first use."""
        with self._lock:
            sess = self._sessions.get(threads)
            if sess is None:
                sess = self._sessions[threads] = self._open(threads)
            return sess

    def _open(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads steal the core a vLLM server or the other encoder thread needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for attempt in range(2):
            path = self.export()
            try:
                return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:
                if attempt:
                    raise OnnxUnavailable(f"onnxruntime cannot load {path}: {exc}") from exc
                log.warning("re-exporting the unreadable ONNX file %s (%s)", path, exc)
                path.unlink(missing_ok=True)

    def token_embeddings(self, features: dict, threads: int) -> np.ndarray:
        """The transformer's last hidden state for a preprocessed batch, (batch, tokens, dim) float32."""
        feeds = {k: features[k].numpy().astype(np.int64) for k in self.inputs}
        return self.session(threads).run(None, feeds)[0]
