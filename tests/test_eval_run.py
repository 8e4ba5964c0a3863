"""Runs: configurations side by side, resumable JSONL, summary and report; plus a real 3-question run."""
from __future__ import annotations

import json

import pytest

from eval.datasets import QAItem, load_dataset
from eval.judge import JudgeVerdict
from eval.report import bootstrap_ci, summarize, write_report
from eval.run import (RESULTS, EvalConfig, EvalError, EvalRun, PassageRecord, PipelineOutput, ResultsFile,
                      load_config)
from tests.conftest import DEV_SET, SMALL_IDS, SMALL_MODEL

ITEMS = [
    QAItem(id="q1", question="How many heads?", answer="8 heads", arxiv_id="A", evidence=("uses 8 heads",), kind="fact"),
    QAItem(id="q2", question="How long?", answer="3.5 days", arxiv_id="B", evidence=("took 3.5 days",), kind="fact"),
    QAItem(id="u1", question="GPT-4 size?", kind="unanswerable"),
]
PASSAGES = (PassageRecord(chunk_id="a1", arxiv_id="A", text="The model uses 8 heads."),
            PassageRecord(chunk_id="b1", arxiv_id="B", text="Training took 3.5 days."))


class FakePipeline:
    def __init__(self, name, fail_on=()):
        self.name = name
        self.calls = []
        self.fail_on = set(fail_on)

    def answer(self, item):
        self.calls.append(item.id)
        if item.id in self.fail_on:
            raise RuntimeError("server died")
        if not item.answerable:
            return PipelineOutput(answer="The indexed papers do not answer this question.", abstained=True,
                                  passages=PASSAGES, timings={"retrieve_s": 0.01, "total_s": 0.02})
        text = {"q1": "The model uses 8 heads [1].", "q2": "Training took 3.5 days [1]."}[item.id]
        return PipelineOutput(answer=text, passages=PASSAGES, timings={"retrieve_s": 0.01, "first_token_s": 0.1,
                                                                        "total_s": 0.5},
                              tokens={"llm_calls": 1, "completion_tokens": 7})

    def close(self):
        pass


class SubstringJudge:
    workers = 1

    def support(self, passages, claim):
        return JudgeVerdict(supported=any(claim.rstrip(".") in p for p in passages))

    def correct(self, question, gold, answer):
        return JudgeVerdict(supported=gold in answer)

    def describe(self):
        return {"model": "substring"}


def make_run(tmp_path, pipelines=None, configs=None):
    configs = configs or [EvalConfig(name="one"), EvalConfig(name="two", overrides={"top_k": 4})]
    pipelines = pipelines or {c.name: FakePipeline(c.name) for c in configs}
    return EvalRun(items=ITEMS, configs=configs, pipelines=pipelines, out_dir=tmp_path / "out",
                   judge=SubstringJudge()), pipelines


def test_run_scores_every_question_and_writes_report(tmp_path):
    run, _ = make_run(tmp_path)
    results = run.run()
    assert len(results) == 6
    r1 = results[("one", "q1")]
    assert r1.faithfulness.score == 1.0 and r1.citations.recall == 1.0 and r1.correctness.judged is True
    assert r1.retrieval.paper_rank == 1 and r1.retrieval.evidence_ranks == (1,)
    r2 = results[("one", "q2")]  # cites [1] but the support is in [2]
    assert r2.faithfulness.score == 1.0 and r2.citations.recall == 0.0
    assert r2.retrieval.evidence_ranks == (2,)
    u = results[("one", "u1")]
    assert u.abstention_ok and u.faithfulness is None and u.retrieval is None
    summary = summarize(results.values(), ["one", "two"], judge_check={"agreement": 0.9, "tasks": {}})
    m = summary["configs"]["one"]["metrics"]
    assert m["faithfulness"]["mean"] == 1.0 and m["citation_recall"]["mean"] == 0.5
    assert m["unanswerable_declined"]["mean"] == 1.0 and m["answerable_answered"]["mean"] == 1.0
    assert m["evidence_recall@1"]["mean"] == 0.5 and m["total_s"]["n"] == 3
    paths = write_report(run.out_dir, summary, list(results.values()), html=True)
    for key in ("summary", "markdown", "html", "quality", "latency"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    md = paths["markdown"].read_text()
    assert "Judge-check agreement 0.90" in md and "plots/quality.png" in md


def test_killed_run_resumes_where_it_stopped(tmp_path):
    run, pipes = make_run(tmp_path)
    run.run()
    path = tmp_path / "out" / RESULTS
    lines = path.read_text().splitlines(keepends=True)
    # Simulate a kill: the last two results never written, the one before torn mid-line.
    path.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    run2, pipes2 = make_run(tmp_path)
    results = run2.run()
    assert len(results) == 6
    assert pipes2["one"].calls == ["u1"] and pipes2["two"].calls == ["q2", "u1"]
    assert len(ResultsFile(path).load()) == 6


def test_failed_question_is_recorded_and_retried(tmp_path):
    configs = [EvalConfig(name="one")]
    run, _ = make_run(tmp_path, {"one": FakePipeline("one", fail_on={"q2"})}, configs)
    results = run.run()
    assert "server died" in results[("one", "q2")].error
    assert summarize(results.values(), ["one"])["configs"]["one"]["failed"] == 1
    run2, pipes = make_run(tmp_path, {"one": FakePipeline("one")}, configs)
    assert not run2.run()[("one", "q2")].error and pipes["one"].calls == ["q2"]


def test_resume_refuses_changed_settings(tmp_path):
    run, _ = make_run(tmp_path)
    run.run()
    changed = [EvalConfig(name="one", overrides={"top_k": 2}), EvalConfig(name="two", overrides={"top_k": 4})]
    run2, _ = make_run(tmp_path, configs=changed)
    with pytest.raises(EvalError, match="other settings"):
        run2.run()


def test_load_config(tmp_path):
    path = tmp_path / "hyb.toml"
    path.write_text('retrieval_mode = "hybrid"\ntop_k = 5\n[eval]\ndescription = "x"\n')
    c = load_config(path)
    assert c.name == "hyb" and c.pipeline == "assistant" and c.overrides == {"retrieval_mode": "hybrid", "top_k": 5}
    assert c.settings(home=tmp_path).retrieval_mode == "hybrid"
    path.write_text('retrival_mode = "hybrid"\n')
    with pytest.raises(EvalError, match="unknown settings"):
        load_config(path)


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parent.parent / "eval" / "configs").glob("*.toml")):
        c = load_config(path)
        c.settings()  # every override is a valid Settings value
    assert load_config(path.parent / "baseline.toml").pipeline == "baseline"


def test_bootstrap_ci():
    mean, lo, hi = bootstrap_ci([0.0, 1.0] * 20)
    assert mean == 0.5 and lo < 0.5 < hi and hi - lo < 0.5
    assert bootstrap_ci([1.0]) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- the real thing, 3 questions

@pytest.mark.llm
def test_three_question_end_to_end(tmp_path, mini_library_home, embedder, vllm_url):
    """Real index (RoBERTa + GQA), real vLLM answering and judging, through the CLI's run machinery."""
    url = vllm_url
    from assistant.llm.client import OpenAICompatibleLLM
    from eval.judge import Judge
    from eval.report import summarize, write_report
    from eval.run import AssistantPipeline

    dev = load_dataset(DEV_SET)
    items = [i for i in dev if i.arxiv_id in SMALL_IDS][:2] + [i for i in dev if not i.answerable][:1]
    assert len(items) == 3
    settings = mini_library_home.model_copy(update={"llm_base_url": url, "llm_model": SMALL_MODEL})
    llm = OpenAICompatibleLLM.from_settings(settings)
    config = EvalConfig(name="default")
    run = EvalRun(items=items, configs=[config], out_dir=tmp_path / "out", judge=Judge(llm, settings.prompts_dir),
                  pipelines={"default": AssistantPipeline("default", settings, embedder=embedder, llm=llm)})
    results = run.run()
    assert len(results) == 3 and not any(r.error for r in results.values())
    answered = [r for r in results.values() if r.answerable]
    assert all(r.retrieval.paper_rank == 1 for r in answered)
    for r in answered:
        if not r.output.abstained:
            assert r.faithfulness.n_sentences > 0 and 0.0 <= r.faithfulness.score <= 1.0
            assert r.output.tokens["completion_tokens"] > 0 and r.output.timings["first_token_s"] > 0
    summary = summarize(results.values(), ["default"])
    paths = write_report(run.out_dir, summary, list(results.values()))
    assert paths["quality"].exists()
    lines = (run.out_dir / RESULTS).read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["output"]["passages"]


def test_metered_llm_counts_sync_and_async():
    import asyncio

    from tests.fakes import ScriptedLLM
    from eval.pipelines import MeteredLLM

    m = MeteredLLM(ScriptedLLM(["one two three", {"ok": True}, "four five"]))
    assert "".join(m.stream([{"role": "user", "content": "hi"}])) == "one two three"
    assert m.complete([{"role": "user", "content": "x"}], json_schema={"type": "object"}) == '{"ok": true}'

    async def collect():
        return [p async for p in m.astream([{"role": "user", "content": "yo"}])]

    assert "".join(asyncio.run(collect())) == "four five"
    snap = m.snapshot()
    assert snap["llm_calls"] == 3 and snap["completion_tokens"] >= 5 and snap["prompt_chars"] == 5
    assert snap["exact"] is False
    m.reset()
    assert m.snapshot()["llm_calls"] == 0


def test_metered_llm_counts_the_quote_picks_with_or_without_log_probabilities():
    from tests.fakes import ScriptedLLM
    from eval.pipelines import MeteredLLM

    class WithChoices(ScriptedLLM):
        def stream_choices(self, messages, **kwargs):
            yield "[2", [{"[": 1.0}, {"2": 0.7}]
            yield "][", [{"][": 1.0}]
            yield "1]", [{"1": 0.9}, {"]": 1.0}]

    m = MeteredLLM(WithChoices([]))
    assert "".join(p for p, _ in m.stream_choices([{"role": "user", "content": "pick"}], max_tokens=16)) == "[2][1]"
    assert m.snapshot()["llm_calls"] == 1 and m.snapshot()["completion_tokens"] == 5 and m.snapshot()["exact"]
    plain = MeteredLLM(ScriptedLLM(["[3]"]))
    assert "".join(p for p, _ in plain.stream_choices([{"role": "user", "content": "pick"}])) == "[3]"
    assert plain.snapshot()["llm_calls"] == 1 and not plain.snapshot()["exact"]
