"""One retrieval per question: the answer path searches each index at most once and reads the gate's scores
(best dense cosine, best BM25 score) from those same calls (engine/retrieve.py Retriever.retrieve)."""
from __future__ import annotations

from collections import Counter

import pytest

from assistant.api import Assistant
from assistant.engine.single_shot import SingleShot
from tests.fakes import ScriptedLLM

QUESTION = "How does grouped-query attention relate to multi-head and multi-query attention?"


def counting(a: Assistant) -> Counter:
    """Wraps every index's search and rerank with a call counter."""
    calls: Counter = Counter()
    lib = a.library
    indexes = {"dense": lib.dense, **lib.extra_indexes}
    for name, index in indexes.items():
        for method in ("search", "search_vector", "rerank"):
            original = getattr(index, method, None)
            if original is None:
                continue

            def wrapped(*args, _original=original, _key=f"{name}.{method}", **kwargs):
                calls[_key] += 1
                return _original(*args, **kwargs)
            setattr(index, method, wrapped)
    return calls


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_index_is_searched_at_most_once_per_question(mini_library_home, embedder, mode):
    a = Assistant(mini_library_home, embedder=embedder)
    calls = counting(a)
    llm = ScriptedLLM(["[1]"])
    events = list(SingleShot(a.retriever, lambda: llm, a.settings).stream(QUESTION, mode=mode))
    answer = events[-1].answer
    assert not answer.abstained and answer.citations
    assert calls and max(calls.values()) == 1, calls
    assert calls["dense.search"] == 1 and calls["bm25.search"] == 1  # the gate's two scores, whatever the mode
    signals = answer.settings["signals"]
    # the scores the gate read are those of the searches themselves
    top_dense = a.library.dense.search(QUESTION, 1)[0][1]
    assert signals["relevance"] == pytest.approx(top_dense, abs=1e-4)
    a.close()
