"""The answerability gate: control flow with a scripted backend, and the real model's scores."""
from __future__ import annotations

import pytest

from assistant.api import Assistant
from tests.fakes import ScriptedLLM
from assistant.llm.protocol import LLMError


class GatedLLM(ScriptedLLM):
    """A scripted LLM that also answers yes_probability, from a list of scores (or errors)."""

    def __init__(self, replies, scores):
        super().__init__(list(replies))
        self.scores = list(scores)
        self.gate_prompts: list[str] = []

    def yes_probability(self, messages):
        self.gate_prompts.append(messages[-1]["content"])
        score = self.scores.pop(0)
        if isinstance(score, Exception):
            raise score
        return score


QUESTION = "How does grouped-query attention relate to multi-head and multi-query attention?"


def ask(settings, embedder, llm, gate: float):
    return Assistant(settings.model_copy(update={"answer_gate": gate}), embedder=embedder, llm=llm).ask(QUESTION)


def test_a_low_score_abstains_without_generating(mini_library_home, embedder):
    llm = GatedLLM([], [0.05])
    answer = ask(mini_library_home, embedder, llm, 0.3)
    assert answer.abstained and "P(yes) 0.05 < 0.3" in answer.settings["abstain_reason"]
    assert llm.calls == [] and QUESTION in llm.gate_prompts[0] and "Yes or No" in llm.gate_prompts[0]
    assert answer.passages  # the passages read are still shown


def test_a_high_score_answers_and_records_it(mini_library_home, embedder):
    llm = GatedLLM(["GQA interpolates between multi-head and multi-query attention [1]."], [0.8])
    answer = ask(mini_library_home, embedder, llm, 0.3)
    assert not answer.abstained and answer.settings["answerability"] == 0.8 and "gate_s" in answer.timings


def test_a_failing_gate_lets_the_answer_go_ahead(mini_library_home, embedder):
    llm = GatedLLM(["GQA uses groups of key-value heads [1]."], [LLMError("no log-probabilities")])
    assert not ask(mini_library_home, embedder, llm, 0.3).abstained


def test_gate_off_or_backend_without_scores_never_asks(mini_library_home, embedder):
    llm = GatedLLM(["An answer [1]."], [])
    assert not ask(mini_library_home, embedder, llm, 0.0).abstained and llm.gate_prompts == []
    plain = ScriptedLLM(["An answer [1]."])
    assert not ask(mini_library_home, embedder, plain, 0.9).abstained


@pytest.mark.llm
def test_real_model_scores_a_covered_question_above_an_uncovered_one(mini_library_home, embedder, llm):
    from assistant.engine.gate import answerability

    a = Assistant(mini_library_home.model_copy(update={"answer_gate": 0.5}), embedder=embedder, llm=llm)
    covered = answerability(QUESTION, a.search(QUESTION, 8), llm, a.settings)
    other = "What was the winning time of the 1968 Olympic men's marathon?"
    uncovered = answerability(other, a.search(other, 8), llm, a.settings)
    assert 0.0 <= uncovered.score < covered.score <= 1.0
