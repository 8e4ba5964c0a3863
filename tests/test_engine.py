"""The agentic engine: plan, search loop, guards, malformed replies, and the shared final steps (fake
models over real paper text, no server, a few seconds; tests/engine_fakes.py)."""
from __future__ import annotations

import json

import pytest

from assistant.engine.agent.workflow import Engine
from tests.engine_fakes import (GQA, ROBERTA, QUESTION, RoutedLLM, answer_copying, events_of,
                                judge_more, judge_ok, make_assistant, plan_reply, quote_text)
from assistant.engine.single_shot import SingleShot


@pytest.fixture
def lib(tmp_path):
    def build(llm, **kw) -> Engine:
        a = make_assistant(tmp_path, llm, **kw)
        return Engine(a.retriever, llm, a.settings)
    return build



# --- the happy path -----------------------------------------------------------------------

def test_simple_question_plans_searches_judges_and_answers_through_the_shared_steps(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)], **answer_copying(1))
    engine = lib(llm)
    events, answer = events_of(engine, QUESTION)
    kinds = [e.kind for e in events]
    for kind in ("plan", "search", "passages", "quotes", "token", "answer"):
        assert kind in kinds, kind
    assert kinds.index("plan") < kinds.index("search") < kinds.index("quotes") < kinds.index("token")
    assert not answer.abstained and answer.citations and answer.citations[0].n == 1
    assert answer.quotes and answer.citations[0].chunk_id == answer.quotes[0].chunk_id
    assert all(v.supported for v in answer.verdicts), answer.verdicts
    assert llm.kinds() == ["plan", "judge_evidence", "answer"]  # a picked quote is its own support: no check call
    # provenance
    assert answer.queries == (QUESTION,)
    assert answer.model == "routed-fake" and "judge_evidence" in answer.prompt and "picks_system" in answer.prompt
    s = answer.settings
    assert s["engine"] == "agentic" and s["rounds"][0]["judgement"]["enough"] is True and "signals" in s
    assert set(s["prompts"]) >= {"plan", "judge_evidence"} and all(len(v) == 8 for v in s["prompts"].values())
    assert {"plan_s", "retrieve_s", "judge_s", "select_s", "generate_s", "verify_s", "total_s"} <= answer.timings.keys()
    assert [h.rank for h in answer.passages] == list(range(1, len(answer.passages) + 1))
    assert all(h.score for h in answer.passages)
    Answer = type(answer)
    assert Answer.model_validate_json(answer.model_dump_json()) == answer  # saved and re-scored later


def test_the_agentic_and_single_shot_engines_share_evidence_gate_and_answer(lib):
    """Same passages in, same quotes, same decision, same Answer shape out: one pipeline, two arrangements."""
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)], **answer_copying(2))
    engine = lib(llm)
    _, agentic = events_of(engine, QUESTION)
    events = list(SingleShot(engine.tools.retriever, lambda: llm, engine.settings).stream(QUESTION))
    single = events[-1].answer
    assert [q.text for q in agentic.quotes] == [q.text for q in single.quotes]
    assert agentic.text == single.text and agentic.citations == single.citations
    assert agentic.settings["signals"] == single.settings["signals"]
    assert agentic.answerability == single.answerability
    # the gate declines in both the same way
    strict = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)], **answer_copying(1))
    engine = lib(strict, answerability_threshold=1.0)
    _, declined = events_of(engine, QUESTION)
    assert declined.abstained and declined.abstain_reason.startswith("P(answerable)")
    assert "answer" not in strict.kinds()


def test_decomposed_question_searches_each_sub_query(lib):
    llm = RoutedLLM(plan=[plan_reply("grouped-query attention groups of query heads",
                                     "RoBERTa dynamic masking")],
                    judge_evidence=[judge_ok(1)], **answer_copying(1))
    events, answer = events_of(lib(llm), "Compare how GQA groups heads with how RoBERTa masks tokens")
    assert len(answer.queries) == 3
    assert llm.kinds().count("judge_evidence") == 3
    assert len([e for e in events if e.kind == "search"]) == 3
    assert answer.settings["plan"]["decomposed"] is True
    assert {h.chunk.arxiv_id for h in answer.passages} == {GQA, ROBERTA}


def test_a_second_round_searches_the_new_query_and_reads_neighbours(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_more("mean-pooling key value heads checkpoint", (2,)),
                                                         judge_ok(1)], **answer_copying(1))
    events, answer = events_of(lib(llm), QUESTION)
    assert answer.queries == (QUESTION, "mean-pooling key value heads checkpoint")
    assert any("reading the passages around" in e.text for e in events if e.kind == "search")
    rounds = answer.settings["rounds"]
    assert len(rounds) == 2 and rounds[1]["judgement"]["enough"]
    assert set(rounds[1]["passages"]) - set(rounds[0]["passages"])  # round two read passages round one had not


# --- guards ------------------------------------------------------------------------------

def test_rounds_are_bounded(lib):
    queries = iter(f"query number {w} about heads" for w in ("one", "two", "three", "four", "five"))
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[lambda m: judge_more(next(queries))], **answer_copying(1))
    events, answer = events_of(lib(llm, max_rounds=3), QUESTION)
    assert llm.kinds().count("judge_evidence") == 3
    assert any("3 rounds done" in e.text for e in events)


def test_a_repeated_query_stops_the_loop(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_more(QUESTION.upper() + "?")], **answer_copying(1))
    events, answer = events_of(lib(llm, max_rounds=5), QUESTION)
    assert llm.kinds().count("judge_evidence") == 1
    assert any("repeated query" in e.text for e in events)


def test_the_token_budget_stops_new_rounds(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_more("another query on key value heads")],
                    **answer_copying(1))
    events, answer = events_of(lib(llm, max_rounds=5, agent_token_budget=10), QUESTION)
    assert llm.kinds().count("judge_evidence") == 1
    assert any("token budget" in e.text for e in events)


# --- malformed model output ---------------------------------------------------------------

def test_malformed_plan_is_retried_once_then_the_question_is_searched_as_asked(lib):
    llm = RoutedLLM(plan=["not json at all", '{"needs_decomposition": tru'], judge_evidence=[judge_ok(1)],
                    **answer_copying(1))
    events, answer = events_of(lib(llm), QUESTION)
    assert llm.kinds()[:2] == ["plan", "plan"]
    assert "not valid JSON" in llm.calls[1][1][-1]["content"]  # the retry nudges
    assert answer.queries == (QUESTION,) and not answer.abstained
    assert "plan unusable" in answer.settings["plan"]["fallback"]


def test_malformed_judge_reply_recovers_on_retry(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=["```json\n{broken", judge_ok(1)], **answer_copying(1))
    _, answer = events_of(lib(llm), QUESTION)
    assert llm.kinds().count("judge_evidence") == 2 and not answer.abstained
    assert answer.settings["rounds"][0]["judgement"]["failed"] == ""


def test_judge_reply_in_a_code_fence_with_chatter_is_accepted(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=["Sure! ```json\n" + json.dumps(judge_ok(2)) + "\n```"],
                    **answer_copying(1))
    _, answer = events_of(lib(llm), QUESTION)
    assert llm.kinds().count("judge_evidence") == 1
    assert answer.settings["rounds"][0]["judgement"]["relevant"] == [2]


def test_out_of_range_passage_numbers_from_the_judge_are_ignored(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(0, 99, -3, 2)], **answer_copying(1))
    _, answer = events_of(lib(llm), QUESTION)
    assert answer.settings["rounds"][0]["judgement"]["relevant"] == [2]


# --- the shared checks, in the written style ---------------------------------------------

def test_a_line_citing_a_quote_never_shown_is_attributed_to_the_quote_it_copies(lib):
    def answer(messages):
        return f"[7] {quote_text(messages, 1)}"
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)], answer=[answer])
    _, ans = events_of(lib(llm, answer_style="lines", answer_lines_regex=False), QUESTION)
    assert "[7]" not in ans.text and ans.citations and ans.citations[0].n == 1


def test_unsupported_sentence_is_removed_and_kept_in_the_verdicts(lib):
    def answer(messages):  # a true line, then the same words with an invented number
        true = quote_text(messages, 1).rstrip(".")
        return f"[1] {true}.\n[1] {true} on 7,777 TPUs."
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)], answer=[answer])
    _, ans = events_of(lib(llm, answer_style="lines"), QUESTION)
    assert "7,777" not in ans.text and not ans.abstained
    bad = [v for v in ans.verdicts if "7,777" in v.sentence]
    assert bad and bad[0].supported is False and "numbers" in bad[0].note


def test_unsupported_sentence_can_be_marked_instead(lib):
    def answer(messages):
        true = quote_text(messages, 1).rstrip(".")
        return f"[1] {true}.\n[1] The authors trained the model on 7,777 TPUs for 13 months."
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)], answer=[answer])
    _, ans = events_of(lib(llm, answer_style="lines", unsupported="mark"), QUESTION)
    assert "7,777 TPUs for 13 months [1] [unsupported]." in ans.text


def test_a_draft_with_no_supported_sentence_falls_back_to_the_quotes_themselves(lib):
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[judge_ok(1)],
                    answer=["[1] Zebras migrate across the Serengeti every spring in large herds."])
    _, ans = events_of(lib(llm, answer_style="lines"), QUESTION)
    assert ans.extractive and "Zebras" not in ans.text and "Zebras" in ans.settings["draft"]
    assert ans.verdicts and ans.verdicts[0].supported is False


def test_judge_finding_nothing_relevant_anywhere_abstains(lib):
    nothing = {"relevant_passages": [], "enough": False, "missing": "all of it", "next_query": ""}
    llm = RoutedLLM(plan=[plan_reply()], judge_evidence=[nothing], **answer_copying(1))
    _, ans = events_of(lib(llm), "What Recall@5 does ColBERTv2 achieve on Natural Questions?")
    assert ans.abstained and "answer" not in llm.kinds()
    assert "judge" in ans.settings["abstain_reason"]


def test_partial_answer_says_what_is_missing(lib):
    nothing = {"relevant_passages": [], "enough": False, "missing": "Mixtral", "next_query": ""}

    def judge(messages):  # by the sub-query judged: the tracks are searched concurrently, in no fixed order
        query = messages[-1]["content"].split("Question:")[-1].split("\n")[0]
        return nothing if "Mixtral" in query else judge_ok(1)

    llm = RoutedLLM(plan=[plan_reply("grouped-query attention groups of query heads",
                                     "Mixtral 8x7B expert routing")],
                    judge_evidence=[judge], **answer_copying(1))
    _, ans = events_of(lib(llm, max_rounds=1), "How does GQA group heads, and how many experts does Mixtral use?")
    assert not ans.abstained
    assert "do not appear to cover: Mixtral 8x7B expert routing" in ans.text
