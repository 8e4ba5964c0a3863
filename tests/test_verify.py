"""Verification of answer sentences against their cited passages: code checks first, the model second."""
from __future__ import annotations

import asyncio


from foundation.config import Settings
from foundation.types import Chunk, Hit
from assistant.engine.verify import averify, numbers_ok, precheck
from tests.test_engine import RoutedLLM

P1 = ("Grouped-query attention divides query heads into G groups, each of which shares a single key head "
      "and value head. GQA-1 is equivalent to MQA.")
P2 = ("We pre-train for 500K steps with a batch size of 8K sequences and a peak learning rate of 6e-4 "
      "on 160GB of text.")


def hit(n: int, text: str) -> Hit:
    c = Chunk(id=f"c{n}", arxiv_id="2305.13245", page_start=n, page_end=n, char_start=0, char_end=len(text), text=text)
    return Hit(chunk=c, score=0.5, rank=n)


HITS = [hit(1, P1), hit(2, P2)]


def run(text: str, llm=None, **settings):
    return asyncio.run(averify(text, HITS, llm or RoutedLLM(), Settings(**settings)))


def test_numbers_are_compared_as_digits():
    assert numbers_ok("a batch size of 8K and 500K steps", P2)
    assert not numbers_ok("trained for 600K steps", P2)
    assert numbers_ok("uses 0.1 dropout", "dropout of 01 is used")  # pypdf drops some decimal points
    assert numbers_ok("GQA-1 equals MQA", P1)  # single digits are not checked


def test_a_copied_sentence_is_supported_without_a_model_call():
    llm = RoutedLLM()
    out = run("Grouped-query attention divides query heads into G groups [1].", llm)
    assert out.verdicts[0].supported is True and llm.calls == []
    assert [c.n for c in out.citations] == [1]


def test_a_wrong_citation_is_replaced_by_the_passage_that_states_it():
    out = run("Grouped-query attention divides query heads into G groups [2].")
    assert out.text == "Grouped-query attention divides query heads into G groups [1]."
    assert "replaced" in out.verdicts[0].note and out.verdicts[0].citations == (1,)


def test_the_model_decides_unclear_sentences_and_may_move_the_citation():
    llm = RoutedLLM(verify=[{"passage": 2, "supported": True}])  # candidates: [1] cited, then [2]
    out = run("The model was trained on 160GB of text with a large batch [1].", llm)
    assert llm.kinds() == ["verify"]
    assert out.verdicts[0].supported is True and out.verdicts[0].citations == (2,)


def test_model_yes_without_shared_words_is_not_believed():
    llm = RoutedLLM(verify=[{"passage": 1, "supported": True}])
    out = run("Bananas are yellow fruits rich in potassium [1].", llm)
    assert out.verdicts[0].supported is False and out.text == ""


def test_verification_failing_leaves_the_sentence_unchecked_not_removed():
    from assistant.llm.protocol import LLMError

    llm = RoutedLLM(verify=[LLMError("HTTP 500")])
    out = run("The model was trained on 160GB of text with a large batch [1].", llm)
    assert out.verdicts[0].supported is None and "not checked" in out.verdicts[0].note
    assert "160GB" in out.text


def test_statements_about_coverage_are_not_checked():
    assert precheck("The papers do not say how many experts Mixtral uses.", [], HITS).supported is None


def test_verification_calls_run_concurrently():
    import threading
    import time

    active, peak = [0], [0]
    lock = threading.Lock()

    def slow(messages):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return {"passage": 1, "supported": False}

    llm = RoutedLLM(verify=[slow])
    text = " ".join(f"Claim number {w} about apples oranges pears [1]." for w in ("one", "two", "three"))
    out = run(text, llm, unsupported="mark")
    assert peak[0] >= 2 and len(out.verdicts) == 3
    assert out.text.count("[unsupported]") == 3


def test_a_name_the_passage_never_mentions_makes_a_copied_sentence_unsupported():
    from assistant.engine.verify import names_in

    assert names_in("Recall of ColBERTv2 beats GPT-4 on Natural Questions [1].") == {
        "colbertv2", "gpt-4", "natural", "questions"}
    llm = RoutedLLM(verify=[{"passage": 1, "supported": True}])
    out = run("In Mixtral grouped-query attention divides query heads into G groups [1].", llm)
    assert out.verdicts[0].supported is False and "mixtral" in out.verdicts[0].note
    assert run("Grouped-query attention divides query heads into G groups; GQA-1 is MQA [1].").verdicts[0].supported
