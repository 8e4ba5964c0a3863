"""The llama-index baseline reads the SAME chunks with the SAME embedder: its top-k equals our dense top-k."""
from __future__ import annotations

import pytest
from llama_index.core.llms import MockLLM

from eval.datasets import QAItem


def test_baseline_retrieves_what_dense_retrieves(mini_library_home, embedder):
    from assistant.api import Assistant
    from eval.baseline import BaselinePipeline

    settings = mini_library_home.model_copy(update={"top_k": 5})
    pipeline = BaselinePipeline("baseline", settings, embedder, llm=MockLLM(max_tokens=8))
    question = "Why is grouped-query attention expected to be an especially good trade-off for larger models?"
    out = pipeline.answer(QAItem(id="q", question=question, answer="x"))
    a = Assistant(settings, embedder=embedder)
    dense = [h.chunk.id for h in a.search(question, k=5, mode="dense")]
    a.close()
    assert [p.chunk_id for p in out.passages] == dense
    assert all(p.arxiv_id for p in out.passages) and out.answer
    assert 0 < out.timings["retrieve_s"] <= out.timings["total_s"]


def test_baseline_never_defaults_to_openai(mini_library_home, embedder):
    from eval.baseline import make_openai_like

    with pytest.raises(RuntimeError, match="never falls back to OpenAI"):
        make_openai_like(mini_library_home.model_copy(update={"llm_base_url": None}))
    llm = make_openai_like(mini_library_home.model_copy(update={"llm_base_url": "http://127.0.0.1:9/v1"}))
    assert llm.api_base == "http://127.0.0.1:9/v1" and llm.model == mini_library_home.llm_model
