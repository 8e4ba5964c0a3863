"""The embedder's batch encoders beside torch fp32 (the baseline), on every chunk of a library, in one
process: onnxruntime fp32 and torch in bfloat16 autocast (what ingest uses on a CPU with native bfloat16:
`embed_batch_dtype`); chunks/s, the speed-up, and how far the vectors moved (cosine of pooled vectors and of
token vectors, min and mean), plus one query's encode p50 for each backend.

    python bench/encoders.py [--home DIR] [--limit N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation.config import load_settings  # noqa: E402
from foundation.hardware import cpu_has_native_bf16  # noqa: E402
from indexes.embedder import SentenceTransformerEmbedder  # noqa: E402
from indexes.store import Store  # noqa: E402

QUESTION = "Why does the Transformer scale dot products by 1/sqrt(d_k)?"


def timed(embedder: SentenceTransformerEmbedder, texts: list[str]):
    start = time.perf_counter()
    out = embedder.encode(texts)
    return out, time.perf_counter() - start


def query_p50(embedder: SentenceTransformerEmbedder, repeats: int = 50) -> float:
    samples = []
    for _ in range(repeats):
        embedder.forget_queries()
        start = time.perf_counter()
        embedder.encode_query(QUESTION)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--limit", type=int, help="Only the first N chunks")
    args = parser.parse_args()
    settings = load_settings(home=args.home)
    store = Store(settings.index_dir / "library.sqlite")
    texts = [c.text for c in store.iter_chunks(level=0)][:args.limit]
    if not texts:
        sys.exit(f"no chunks in {settings.home}: ingest first")
    torch_enc = SentenceTransformerEmbedder(settings.embedder, settings.embed_batch_size, backend="torch")
    onnx_enc = SentenceTransformerEmbedder(settings.embedder, settings.embed_batch_size, backend="onnx")
    bf16_enc = SentenceTransformerEmbedder(settings.embedder, settings.embed_batch_size, backend="torch", batch_bf16=True)
    for enc in (torch_enc, onnx_enc, bf16_enc):
        enc.encode(texts[:8])  # loading and exporting are not encoding
    (ref_pooled, ref_tokens, _), t_torch = timed(torch_enc, texts)
    print(f"{len(texts)} chunks, {sum(len(t) for t in ref_tokens)} token vectors, batch {settings.embed_batch_size}")
    print(f"torch fp32 (baseline)      {t_torch:7.1f} s  {len(texts) / t_torch:6.1f} chunks/s")
    native = "native" if cpu_has_native_bf16() else "emulated: this CPU has no AVX-512 BF16/AMX"
    for label, enc in (("onnxruntime fp32", onnx_enc), (f"torch bf16 ({native})", bf16_enc)):
        (pooled, tokens, _), seconds = timed(enc, texts)
        print(f"{label:26} {seconds:7.1f} s  {len(texts) / seconds:6.1f} chunks/s  ({t_torch / seconds:.2f}x the baseline's speed)")
        cos = np.sum(pooled * ref_pooled, axis=1)
        token_cos = np.concatenate([np.sum(a * b, axis=1) for a, b in zip(tokens, ref_tokens)])
        print(f"  pooled vectors: cosine to torch fp32 min {cos.min():.6f} mean {cos.mean():.6f}")
        print(f"  token vectors:  cosine to torch fp32 min {token_cos.min():.6f} mean {token_cos.mean():.6f}")
    q_torch, q_onnx = query_p50(torch_enc), query_p50(onnx_enc)
    print(f"one query encode p50: torch {q_torch:.1f} ms, onnxruntime {q_onnx:.1f} ms ({q_torch / q_onnx:.2f}x)")
    store.close()


if __name__ == "__main__":
    main()
