"""Scored judging: P(Yes) from the server's log-probabilities, thresholds fitted on judge-check pairs."""
from __future__ import annotations

import pytest

from foundation.config import PROJECT_ROOT
from assistant.llm.protocol import LLMError
from eval.datasets import QAItem
from eval.judge import Judge, auc, best_threshold, run_judge_check

PROMPTS = PROJECT_ROOT / "prompts"


class ScoresLLM:
    """Answers yes_probability from a function of the prompt; records the prompts."""

    model = "scores"

    def __init__(self, score):
        self.score = score
        self.prompts: list[str] = []

    def complete(self, *args, **kwargs):  # a scored judge must never ask for JSON
        raise AssertionError("complete() called on a scored judge")

    def yes_probability(self, messages):
        self.prompts.append(messages[-1]["content"])
        result = self.score(messages[-1]["content"])
        if isinstance(result, Exception):
            raise result
        return result


def test_threshold_and_auc_on_known_scores():
    scored = [(0.9, True), (0.35, True), (0.3, False), (0.1, False)]
    cut = best_threshold(scored)
    assert 0.3 < cut <= 0.35
    assert auc(scored) == 1.0
    assert auc([(0.2, True), (0.8, False)]) == 0.0
    assert auc([(0.5, True)]) is None


def test_verdict_follows_the_calibrated_threshold():
    llm = ScoresLLM(lambda prompt: 0.4)
    judge = Judge(llm, PROMPTS, workers=1)
    assert judge.scored and "Yes or No" in PROMPTS.joinpath("judge_support_yesno.txt").read_text()
    assert judge.support(["p"], "c").supported is False  # default cut 0.5
    judge.thresholds["support"] = 0.3
    v = judge.support(["p"], "c")  # cached score, re-read at the new cut: no second call
    assert v.supported is True and v.score == 0.4 and len(llm.prompts) == 1


def test_backend_failure_is_an_error_never_a_yes():
    judge = Judge(ScoresLLM(lambda prompt: LLMError("no log-probabilities")), PROMPTS, workers=1, retries=1)
    v = judge.support(["p"], "c")
    assert v.supported is None and "no log-probabilities" in v.error and v.attempts == 2


def test_judge_check_fits_thresholds_then_reports_agreement():
    items = [QAItem(id=f"q{i}", question=f"question {i}", answer=f"answer {i}", arxiv_id=f"2301.0000{i}",
                    evidence=(f"evidence {i}",), kind="fact") for i in range(4)]

    def score(prompt: str) -> float:  # true pairs mention the same number twice: 0.35, false ones 0.2
        if "Statement:" in prompt:
            n_ev, n_claim = prompt.split("evidence ")[1][0], prompt.split("answer ")[1][0]
        else:
            # graded: "answer i" (the gold answer) or "evidence i" (the gold evidence as an answer)
            n_ev, n_claim = prompt.split("Reference answer: answer ")[1][0], prompt.split("Answer to grade: ")[1].split()[1][0]
        return 0.35 if n_ev == n_claim else 0.2

    judge = Judge(ScoresLLM(score), PROMPTS, workers=1)
    check = run_judge_check(items, judge)
    assert 0.2 < judge.thresholds["support"] <= 0.35 and 0.2 < judge.thresholds["correct"] <= 0.35
    assert check.agreement == 1.0 and check.tasks["support"].auc == 1.0
    assert check.judge["thresholds"] == judge.thresholds


@pytest.mark.llm
def test_real_server_scores_a_supported_claim_above_an_unrelated_one(llm):
    judge = Judge(llm, PROMPTS, workers=1)
    passage = ["We train the model with a batch size of 256 sequences for 100,000 steps on 16 TPU chips."]
    yes = judge.support(passage, "The model was trained with a batch size of 256 for 100,000 steps.")
    no = judge.support(passage, "The tokenizer has a vocabulary of 50,000 byte-pair merges learned on Wikipedia.")
    assert 0.0 <= no.score < yes.score <= 1.0


def test_rejudge_grades_answers_again_without_running_the_pipeline(tmp_path):
    """A new judge prompt or threshold re-grades a finished run: each answered result gets a new verdict and
    score, appended, and the results file then reads the new one; abstentions are left as they were."""
    from eval.metrics import CorrectnessResult
    from eval.run import PipelineOutput, QuestionResult, ResultsFile, rejudge_correctness

    def result(qid, answer, abstained=False):
        return QuestionResult(config="c", config_hash="h", qid=qid, question=f"question {qid}", kind="fact",
                              answerable=True, gold_answer="answer 1", output=PipelineOutput(answer=answer, abstained=abstained),
                              correctness=CorrectnessResult(token_f1=0.0, judged=False, error="abstained" if abstained else ""))

    file = ResultsFile(tmp_path / "results.jsonl")
    for r in (result("a", "answer 1"), result("b", "answer 2"), result("u", "", abstained=True)):
        file.append(r)
    judge = Judge(ScoresLLM(lambda prompt: 0.9 if "Answer to grade: answer 1" in prompt else 0.1), PROMPTS, workers=1)
    for r in rejudge_correctness(file.load().values(), judge):
        file.append(r)
    now = {qid: r.correctness for (_, qid), r in file.load().items()}
    assert now["a"].judged is True and now["a"].score == 0.9
    assert now["b"].judged is False and now["b"].score == 0.1
    assert now["u"].error == "abstained" and now["u"].score is None
