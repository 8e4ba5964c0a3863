"""Side-by-side evaluation runs: configurations x questions -> per-question provenance JSONL + summary.

A configuration is a TOML file of Settings overrides (``retrieval_mode = "hybrid"``, ``hyde = true``,
``agentic = true``); an optional ``[eval]`` table names it and picks the pipeline (``pipeline =
"baseline"`` for the naive llama-index one). Results are appended one line per (configuration,
question) as each completes, so a killed run continues where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from foundation.config import Settings, load_settings
from indexes.embedder import embedder_for
from eval.baseline import BaselinePipeline
from eval.datasets import QAItem
from eval.judge import Judge
from eval.pipelines import AssistantPipeline, PassageRecord, Pipeline, PipelineOutput  # noqa: F401
from eval.metrics import (CitationResult, CorrectnessResult, FaithfulnessResult, RetrievalScores, abstention_ok,
                          GroundingResult, retrieval_scores, score_citations, score_correctness,
                          score_faithfulness, score_grounding)

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
RUN_INFO = "run.json"
JUDGE_CHECK = "judge_check.json"


class EvalError(RuntimeError):
    """A run that cannot start or continue (bad configuration, results from other settings)."""


# --------------------------------------------------------------------------- configurations

class EvalConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    pipeline: Literal["assistant", "baseline"] = "assistant"
    description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    path: str = ""

    @property
    def hash(self) -> str:
        blob = json.dumps({"pipeline": self.pipeline, "overrides": self.overrides}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def settings(self, config_file: Path | None = None, **base_overrides: Any) -> Settings:
        """Settings from the user's config file/env/flags, then this configuration's overrides on top."""
        return load_settings(config_file, **{**base_overrides, **self.overrides})


def load_config(path: Path | str) -> EvalConfig:
    path = Path(path)
    if not path.exists():
        raise EvalError(f"{path}: no such configuration file")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EvalError(f"{path}: not valid TOML ({exc})") from None
    meta = values.pop("eval", {})
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise EvalError(f"{path}: unknown settings {sorted(unknown)} (eval options go in an [eval] table)")
    try:
        return EvalConfig(name=meta.get("name", path.stem), pipeline=meta.get("pipeline", "assistant"),
                          description=meta.get("description", ""), overrides=values, path=str(path))
    except ValueError as exc:
        raise EvalError(f"{path}: {exc}") from None


class QuestionResult(BaseModel):
    """One (configuration, question): what was retrieved and answered, and every verdict on it."""

    config: str
    config_hash: str
    qid: str
    question: str
    kind: str
    answerable: bool
    gold_answer: str | None = None
    gold_arxiv_id: str | None = None
    output: PipelineOutput | None = None
    error: str = ""
    retrieval: RetrievalScores | None = None
    faithfulness: FaithfulnessResult | None = None
    citations: CitationResult | None = None
    grounding: GroundingResult | None = None
    correctness: CorrectnessResult | None = None
    abstention_ok: bool | None = None
    wall_s: float = 0.0
    judge_s: float = 0.0
    finished_at: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.config, self.qid


# --------------------------------------------------------------------------- scoring one answer

def score_output(config: EvalConfig, item: QAItem, output: PipelineOutput, judge: Judge | None) -> QuestionResult:
    start = time.perf_counter()
    texts = [p.text for p in output.passages]
    retrieval = None
    if item.answerable and item.arxiv_id:
        retrieval = retrieval_scores(item.arxiv_id, item.evidence, [(p.arxiv_id, p.text) for p in output.passages])
    faith = cites = correct = grounding = None
    sources = list(output.sources) or texts
    if not output.abstained:
        grounding = score_grounding(output.answer, sources)
    if not output.abstained and judge is not None:
        faith = score_faithfulness(output.answer, sources, judge)
        cites = score_citations(output.answer, sources, judge)
    if item.answerable and item.answer:
        if output.abstained:
            correct = CorrectnessResult(token_f1=0.0, judged=False, error="abstained")
        else:
            correct = score_correctness(item.question, item.answer, output.answer, judge)
    return QuestionResult(
        config=config.name, config_hash=config.hash, qid=item.id, question=item.question, kind=item.kind,
        answerable=item.answerable, gold_answer=item.answer, gold_arxiv_id=item.arxiv_id, output=output,
        retrieval=retrieval, faithfulness=faith, citations=cites, correctness=correct, grounding=grounding,
        abstention_ok=abstention_ok(item.answerable, output.abstained), judge_s=round(time.perf_counter() - start, 3),
        finished_at=time.time())


# --------------------------------------------------------------------------- the results file

def rejudge_correctness(results: Iterable[QuestionResult], judge) -> Iterator[QuestionResult]:
    """The answered results graded for correctness again by `judge` (a new judge prompt or threshold), the
    answers as they were: no pipeline runs. Appended to the results file, each replaces its key's line."""
    for r in results:
        if r.output is None or r.output.abstained or not r.answerable or not r.gold_answer or r.correctness is None:
            continue
        yield r.model_copy(update={"correctness": score_correctness(r.question, r.gold_answer, r.output.answer, judge)})


class ResultsFile:
    """Append-only JSONL; the last complete line for a key wins; a torn last line (killed run) is ignored."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[tuple[str, str], QuestionResult]:
        results: dict[tuple[str, str], QuestionResult] = {}
        if not self.path.exists():
            return results
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    result = QuestionResult.model_validate_json(line)
                except ValueError:
                    continue  # a line cut short by a kill: that question simply runs again
                results[result.key] = result
        return results

    def append(self, result: QuestionResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = result.model_dump_json() + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                fh.write("\n")  # after a torn line, start clean
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"


# --------------------------------------------------------------------------- the run

@dataclass
class RunEvent:
    config: str
    qid: str
    done: int
    total: int
    result: QuestionResult | None = None
    skipped: bool = False


@dataclass
class EvalRun:
    """Runs every configuration on every question, question by question, so a partial run stays balanced."""

    items: Sequence[QAItem]
    configs: Sequence[EvalConfig]
    pipelines: dict[str, Pipeline]
    out_dir: Path
    judge: Judge | None = None
    dataset: str = ""
    on_event: Callable[[RunEvent], None] = lambda e: None
    results: dict[tuple[str, str], QuestionResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.configs]
        if len(set(names)) != len(names):
            raise EvalError(f"two configurations share a name: {names}")
        self.out_dir = Path(self.out_dir)
        self.file = ResultsFile(self.out_dir / RESULTS)

    def check_resume(self) -> dict[tuple[str, str], QuestionResult]:
        """Earlier results in out_dir; refuse ones made with different settings under the same name."""
        previous = self.file.load()
        hashes = {c.name: c.hash for c in self.configs}
        for (name, _), result in previous.items():
            if name in hashes and result.config_hash != hashes[name]:
                raise EvalError(f"{self.out_dir} holds results of configuration {name!r} made with other settings "
                                f"({result.config_hash} != {hashes[name]}): use another --out or --fresh")
        return previous

    def run(self) -> dict[tuple[str, str], QuestionResult]:
        self.results = self.check_resume()
        self.write_info()
        total = len(self.items) * len(self.configs)
        done = 0
        for item in self.items:
            for config in self.configs:
                key = (config.name, item.id)
                prev = self.results.get(key)
                done += 1
                if prev is not None and not prev.error:
                    self.on_event(RunEvent(config.name, item.id, done, total, prev, skipped=True))
                    continue
                result = self.run_one(config, item)
                self.results[key] = result
                self.file.append(result)
                self.on_event(RunEvent(config.name, item.id, done, total, result))
        return self.results

    def run_one(self, config: EvalConfig, item: QAItem) -> QuestionResult:
        start = time.perf_counter()
        try:
            output = self.pipelines[config.name].answer(item)
        except Exception as exc:  # one failed question is recorded (and retried on resume), the run goes on
            return QuestionResult(config=config.name, config_hash=config.hash, qid=item.id, question=item.question,
                                  kind=item.kind, answerable=item.answerable, gold_answer=item.answer,
                                  gold_arxiv_id=item.arxiv_id, error=f"{type(exc).__name__}: {exc}",
                                  wall_s=round(time.perf_counter() - start, 3), finished_at=time.time())
        wall = round(time.perf_counter() - start, 3)
        output.timings.setdefault("total_s", wall)
        result = score_output(config, item, output, self.judge)
        return result.model_copy(update={"wall_s": wall})

    def write_info(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        info = {"dataset": self.dataset, "questions": [i.id for i in self.items],
                "configs": [c.model_dump(mode="json") | {"hash": c.hash} for c in self.configs],
                "judge": self.judge.describe() if self.judge else None, "updated_at": time.time()}
        (self.out_dir / RUN_INFO).write_text(json.dumps(info, indent=2, default=str))


# --------------------------------------------------------------------------- a run folder, read back

def in_run_order(results: dict[tuple[str, str], QuestionResult], configs: Sequence[str],
                 questions: Sequence[str]) -> list[QuestionResult]:
    """Results question by question, the configurations side by side (as the report lists them)."""
    return [results[(c, q)] for q in questions for c in configs if (c, q) in results]


def saved_judge_check(out_dir: Path) -> dict[str, Any] | None:
    """The judge-check a run folder holds, if any."""
    path = Path(out_dir) / JUDGE_CHECK
    return json.loads(path.read_text()) if path.exists() else None


def use_saved_thresholds(judge: Judge, out_dir: Path) -> None:
    """A scored judge takes the P(Yes) thresholds of the run folder's judge-check, where there is one."""
    check = saved_judge_check(out_dir)
    if judge.scored and check:
        judge.thresholds.update(check.get("judge", {}).get("thresholds") or {})


def load_run(out_dir: Path) -> tuple[list[QuestionResult], list[str], dict[str, Any]]:
    """A run folder's results in run order, its configuration names and its run.json (what a report needs)."""
    out_dir = Path(out_dir)
    info = json.loads((out_dir / RUN_INFO).read_text()) if (out_dir / RUN_INFO).exists() else {}
    results = ResultsFile(out_dir / RESULTS).load()
    names = [c["name"] for c in info.get("configs", [])] or list(dict.fromkeys(k[0] for k in results))
    questions = info.get("questions") or list(dict.fromkeys(k[1] for k in results))
    return in_run_order(results, names, questions), names, info


def record_judge(out_dir: Path, judge: Judge) -> None:
    """run.json names the judge (and thresholds) that graded the run, after a rejudge too."""
    path = Path(out_dir) / RUN_INFO
    if path.exists():
        info = json.loads(path.read_text())
        info["judge"] = judge.describe()
        path.write_text(json.dumps(info, indent=2))


def build_pipelines(configs: Sequence[EvalConfig], config_file: Path | None = None,
                    base_overrides: dict[str, Any] | None = None, llm=None) -> dict[str, Pipeline]:
    """One pipeline per configuration; configurations with the same embedder share one loaded model."""
    embedders: dict[str, Any] = {}
    pipelines: dict[str, Pipeline] = {}
    for config in configs:
        settings = config.settings(config_file, **(base_overrides or {}))
        embedder = embedders.setdefault(settings.embedder, embedder_for(settings))
        if config.pipeline == "baseline":
            pipelines[config.name] = BaselinePipeline(config.name, settings, embedder)
        else:
            pipelines[config.name] = AssistantPipeline(config.name, settings, embedder=embedder, llm=llm)
    return pipelines
