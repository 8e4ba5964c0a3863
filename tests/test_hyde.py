"""HyDE: a hypothetical passage's embedding is searched beside the question's and fused."""
from __future__ import annotations

import asyncio

from assistant.engine.hyde import ahyde, hyde
from assistant.llm.protocol import LLMError
from tests.test_engine import GQA, QUESTION, Engine, RoutedLLM, events_of, judge_ok, make_assistant, plan_reply

HYPO = ("When converting a multi-head checkpoint to a GQA checkpoint, we construct each group key and value "
        "head by mean-pooling all the original heads within that group.")


def test_hyde_embeds_the_model_passage(tmp_path):
    a = make_assistant(tmp_path, None)
    out = hyde(QUESTION, RoutedLLM(hyde=[HYPO]), a.embedder, a.settings)
    assert out.passages == [HYPO] and len(out.vectors) == 1 and out.vectors[0].shape == (384,)


def test_hyde_failure_means_no_vectors_not_a_crash(tmp_path):
    a = make_assistant(tmp_path, None)
    out = asyncio.run(ahyde(QUESTION, RoutedLLM(hyde=[LLMError("server down")]), a.embedder, a.settings))
    assert out.vectors == [] and "server down" in out.error
    out = asyncio.run(ahyde(QUESTION, RoutedLLM(hyde=["ok"]), a.embedder, a.settings))
    assert out.vectors == [] and "no usable passage" in out.error


def test_hyde_vectors_change_the_ranking(tmp_path):
    a = make_assistant(tmp_path, None)
    q = "How are the new heads initialised?"
    plain = a.retriever.search(q, "dense", 5)
    vec = hyde(q, RoutedLLM(hyde=[HYPO]), a.embedder, a.settings).vectors
    fused = a.retriever.search(q, "dense", 5, extra_vectors=vec)
    assert [h.chunk.id for h in fused] != [h.chunk.id for h in plain]
    assert any("mean-" in h.chunk.text for h in fused[:2])


def test_engine_runs_hyde_beside_the_plan_and_records_it(tmp_path):
    llm = RoutedLLM(plan=[plan_reply()], hyde=[HYPO], judge_evidence=[judge_ok(1)],
                    answer=["Each group key and value head is built by mean-pooling the original heads [1]."])
    a = make_assistant(tmp_path, llm)
    _, ans = events_of(Engine(a.retriever, llm, a.settings), QUESTION, hyde=True)
    assert set(llm.kinds()[:2]) == {"plan", "hyde"}
    assert ans.settings["hyde"] is True and ans.settings["hyde_passages"] == [HYPO]
    assert "hyde" in ans.settings["prompts"] and "hyde_s" in ans.timings


def test_single_shot_path_applies_hyde_when_set(tmp_path):
    llm = RoutedLLM(hyde=[HYPO], answer=["Each group key and value head is mean-pooled [1]."])
    a = make_assistant(tmp_path, llm)
    ans = a.ask(QUESTION, agentic=False, hyde=True)
    assert llm.kinds() == ["hyde", "answer"] and "hyde_s" in ans.timings
    assert any(h.chunk.arxiv_id == GQA for h in ans.passages)
