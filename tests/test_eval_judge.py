"""The judge's JSON handling with a scripted backend: malformed -> retried -> error, never "supported"."""
from __future__ import annotations

from pathlib import Path

from foundation.config import PROJECT_ROOT
from tests.fakes import ScriptedLLM
from assistant.llm.protocol import LLMError
from eval.datasets import QAItem
from eval.judge import SUPPORT_SCHEMA, Judge, check_pairs, run_judge_check
from eval.metrics import score_faithfulness

PROMPTS = PROJECT_ROOT / "prompts"


def judge_with(*replies) -> tuple[Judge, ScriptedLLM]:
    llm = ScriptedLLM(list(replies))
    return Judge(llm, PROMPTS, workers=1), llm


def test_valid_verdict_schema_and_temperature():
    judge, llm = judge_with({"verdict": "supported"})
    v = judge.support(["Passage text."], "A claim.")
    assert v.supported is True and v.attempts == 1 and not v.error
    call = llm.calls[0]
    assert call["temperature"] == 0.0 and call["json_schema"] == SUPPORT_SCHEMA
    assert "Passage text." in call["messages"][1]["content"] and "A claim." in call["messages"][1]["content"]


def test_malformed_then_valid_is_retried():
    judge, llm = judge_with("not json", {"verdict": "not supported"})
    v = judge.support(["p"], "c")
    assert v.supported is False and v.attempts == 2 and len(llm.calls) == 2


def test_malformed_twice_is_an_error_never_supported():
    judge, llm = judge_with('{"verdict": "yes"}', '{"supported": true}', {"verdict": "supported"})
    v = judge.support(["p"], "c")
    assert v.supported is None and "unusable JSON" in v.error and len(llm.calls) == 2
    assert judge.errors == 1


def test_backend_failure_is_an_error():
    judge, _ = judge_with(LLMError("server died"), LLMError("server died"))
    v = judge.support(["p"], "c")
    assert v.supported is None and "server died" in v.error


def test_errors_count_as_unsupported_in_faithfulness():
    judge, _ = judge_with({"verdict": "supported"}, "{", "{")
    r = score_faithfulness("First claim. Second claim.", ["p"], judge)
    assert r.n_supported == 1 and r.n_errors == 1 and r.score == 0.5


def test_verdicts_are_cached():
    judge, llm = judge_with({"verdict": "supported"})
    assert judge.support(["p"], "c").supported is True
    assert judge.support(["p"], "c").supported is True
    assert len(llm.calls) == 1


def test_correctness_verdict():
    judge, llm = judge_with({"verdict": "correct"})
    assert judge.correct("q?", "gold", "answer").supported is True
    assert "gold" in llm.calls[0]["messages"][1]["content"]


def test_judge_check_pairs_and_agreement():
    items = [QAItem(id="a", question="qa", answer="ans a", arxiv_id="1", evidence=("ev a",)),
             QAItem(id="b", question="qb", answer="ans b", arxiv_id="2", evidence=("ev b",)),
             QAItem(id="u", question="qu", kind="unanswerable")]
    pairs = check_pairs(items, ["support"])
    assert [(t, k, i.id, o.id, truth) for t, k, i, o, _, _, truth in pairs] == [
        ("support", "same", "a", "a", True), ("support", "other-paper", "a", "b", False),
        ("support", "same", "b", "b", True), ("support", "other-paper", "b", "a", False)]
    # The judge says yes to everything: right on positives, wrong on negatives.
    judge, _ = judge_with(*[{"verdict": "supported"}] * 4)
    result = run_judge_check(items, judge, tasks=["support"])
    a = result.tasks["support"]
    assert a.n == 4 and a.agreement == 0.5 and a.true_positive_rate == 1.0 and a.true_negative_rate == 0.0
    assert result.agreement == 0.5


def test_every_judge_prompt_renders():
    from foundation.prompts import load_prompt

    assert load_prompt("judge_support_user", Path(PROMPTS)).render(passages="[1] x", claim="y")
    assert load_prompt("judge_correct_user", Path(PROMPTS)).render(question="q", gold="g", answer="a")
    assert load_prompt("judge_support_system", Path(PROMPTS)).render()
    assert load_prompt("judge_correct_system", Path(PROMPTS)).render()


def test_passages_over_the_context_budget_keep_the_relevant_one():
    llm = ScriptedLLM([{"verdict": "supported"}])
    judge = Judge(llm, PROMPTS, workers=1, max_passage_chars=120)
    filler = ["Unrelated text about something else entirely. " * 2] * 3
    judge.support(filler + ["Dropout of 0.1 is applied to every sub-layer."], "Dropout 0.1 is applied to sub-layers.")
    sent = llm.calls[0]["messages"][1]["content"]
    assert "Dropout of 0.1" in sent and len(sent) < 600


def test_hard_pairs_change_one_number_or_name_and_use_the_neighbouring_passage(mini_library_home):
    from eval.datasets import load_dataset
    from indexes.store import Store
    from tests.conftest import DEV_SET, SMALL_IDS

    items = [i for i in load_dataset(DEV_SET) if i.arxiv_id in SMALL_IDS]
    store = Store(mini_library_home.index_dir / "library.sqlite")
    pairs = check_pairs(items, ["support"], store=store)
    correct = check_pairs(items, ["correct"], store=store)
    by_kind = {}
    for task, kind, item, _, passages, claim, truth in pairs:
        by_kind.setdefault(kind, []).append((item, passages, claim, truth))
    assert by_kind.get("neighbour") and (by_kind.get("number") or by_kind.get("name"))
    for item, passages, claim, truth in by_kind["neighbour"]:
        assert not truth and claim == item.answer and passages[0] not in item.evidence
        assert not any(e[:40] in passages[0] for e in item.evidence)  # beside the evidence, not holding it
    for kind in ("number", "name"):
        for item, passages, claim, truth in by_kind.get(kind, []):
            assert not truth and claim != item.answer and passages == tuple(item.evidence)
    # Correctness: the evidence sentences answer (true); the neighbouring passage and a changed number do not.
    kinds = {}
    for task, kind, item, _, _, answer, truth in correct:
        kinds.setdefault(kind, []).append((item, answer, truth))
    assert {"same", "evidence", "other-paper", "neighbour"} <= kinds.keys()
    assert all(truth and answer == " ".join(item.evidence) for item, answer, truth in kinds["evidence"])
    for kind in ("neighbour", "number"):
        for item, answer, truth in kinds.get(kind, []):
            assert not truth and answer != item.answer
            assert not any(e[:40] in answer for e in item.evidence)
