"""The embedder on onnxruntime (the default) against torch, on real chunks: the same vectors, pooled and per
token, the same token ids; the export is made once and reused, a torn export is made again, and where no
export can be written the embedder says so and runs torch."""
from __future__ import annotations

import logging

import numpy as np
import pytest

pytestmark = pytest.mark.model

PAPER = "2305.13245"  # GQA: small


@pytest.fixture(scope="module")
def texts(paper_chunks):
    return [c.text for c in paper_chunks[PAPER]][:40] + ["a", "Why does the Transformer scale dot products by 1/sqrt(d_k)?"]


@pytest.fixture(scope="module")
def torch_vectors(texts):
    from indexes.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", backend="torch").encode(texts)


def test_onnx_gives_torch_vectors_and_reuses_its_export(texts, torch_vectors, tmp_path):
    from indexes.embedder import SentenceTransformerEmbedder

    onnx = SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path)
    pooled, tokens, ids = onnx.encode(texts)
    assert onnx.backend == "onnx"
    [export] = list((tmp_path / "onnx").glob("*.onnx"))
    ref_pooled, ref_tokens, ref_ids = torch_vectors
    assert np.min(np.sum(pooled * ref_pooled, axis=1)) > 0.9999
    assert all(np.array_equal(a, b) for a, b in zip(ids, ref_ids))
    assert min(float(np.min(np.sum(a * b, axis=1))) for a, b in zip(tokens, ref_tokens)) > 0.999
    assert np.allclose(onnx.embed(texts), pooled, atol=1e-5)
    assert np.allclose(onnx.encode_query(texts[-1])[0], ref_pooled[-1], atol=1e-4)

    made = export.stat().st_mtime_ns
    again = SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path)
    assert np.allclose(again.embed(texts[:3]), pooled[:3], atol=1e-5) and export.stat().st_mtime_ns == made


def test_a_torn_export_is_made_again(texts, torch_vectors, tmp_path):
    from indexes.embedder import SentenceTransformerEmbedder

    SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path).embed(texts[:1])
    [export] = list((tmp_path / "onnx").glob("*.onnx"))
    export.write_bytes(export.read_bytes()[:1000])  # a killed copy, say
    fresh = SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path)
    assert np.min(np.sum(fresh.embed(texts) * torch_vectors[0], axis=1)) > 0.9999
    assert fresh.backend == "onnx" and export.stat().st_size > 10_000_000


def test_without_a_writable_cache_it_says_so_and_runs_torch(texts, torch_vectors, tmp_path, caplog):
    from indexes.embedder import SentenceTransformerEmbedder

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_dir=blocked)
    with caplog.at_level(logging.WARNING):
        vectors = embedder.embed(texts)
    assert embedder.backend == "torch" and "embedding with torch" in caplog.text
    assert np.allclose(vectors, torch_vectors[0], atol=1e-6)


def test_bfloat16_batches_keep_the_fp32_vectors_and_a_query_stays_on_onnx(texts, torch_vectors, tmp_path):
    """Ingest's batches in bfloat16 autocast (emulated, slower, on a CPU without native bfloat16, but the
    same numbers): pooled and token vectors stay within a hair of fp32's, the token ids are the same, and one
    query is encoded by the backend (onnx), not by the bfloat16 path."""
    from indexes.embedder import SentenceTransformerEmbedder

    bf16 = SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path, batch_bf16=True)
    pooled, tokens, ids = bf16.encode(texts)
    ref_pooled, ref_tokens, ref_ids = torch_vectors
    assert pooled.dtype == np.float32 and all(t.dtype == np.float32 for t in tokens)
    assert all(np.array_equal(a, b) for a, b in zip(ids, ref_ids))
    cos = np.sum(pooled * ref_pooled, axis=1)
    assert 0.999 < np.min(cos) and np.mean(cos) < 1 - 1e-7  # close, and really computed in bfloat16
    assert min(float(np.min(np.sum(a * b, axis=1))) for a, b in zip(tokens, ref_tokens)) > 0.99
    query = bf16.encode_query(texts[-1])[0]
    assert np.allclose(query, ref_pooled[-1], atol=1e-4) and list((tmp_path / "onnx").glob("*.onnx"))


def test_settings_choose_bfloat16_batches_only_where_asked_or_native(monkeypatch):
    from foundation import hardware
    from foundation.config import Settings
    from indexes.embedder import embedder_for

    assert embedder_for(Settings(embed_batch_dtype="bfloat16")).batch_bf16
    assert not embedder_for(Settings(embed_batch_dtype="float32")).batch_bf16
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert not embedder_for(Settings()).batch_bf16
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert embedder_for(Settings()).batch_bf16
