"""`paper-assistant eval ...`: run configurations side by side, retrieval-only recall, judge-check, scoring, reports.

The metrics, runs and reports are eval/'s; this module parses options and shows progress and tables. eval.* and
assistant.api are imported inside the commands: eval's judge and report alone add ~0.4-0.8 s (the judge's LLM
client, numpy for the report; python -X importtime) to every `paper-assistant` start, which takes ~0.4 s without.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.progress import TextColumn
from rich.table import Table

from assistant.cli.common import console, data, global_options, out, settings_of
from assistant.cli.progress import progress_bar
from foundation.config import PROJECT_ROOT, Settings
from indexes.store import Store

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate answers and retrieval on a gold set; score any RAG system's answers.")

DEFAULT_DATASET = PROJECT_ROOT.parent / "shared" / "eval" / "dev.jsonl"
JudgeUrl = typer.Option(None, "--judge-url", envvar="PAPER_ASSISTANT_JUDGE_URL",
                        help="OpenAI-compatible endpoint of the judge (default: the answering LLM's)")
JudgeModel = typer.Option(None, "--judge-model", envvar="PAPER_ASSISTANT_JUDGE_MODEL",
                          help="Model name of the judge (default: the answering model)")
JudgeWorkers = typer.Option(2, "--judge-workers", help="Judge requests sent at once (vLLM batches them)")


def _store(settings: Settings) -> Store | None:
    """The library's store, for the judge-check's near-miss pairs (the passage beside the evidence)."""
    path = settings.index_dir / "library.sqlite"
    return Store(path) if path.exists() else None


def _shown(path: Path) -> str:
    """A dataset path as reports record it: relative to the project when it can be (reports are committed)."""
    return os.path.relpath(path.resolve(), PROJECT_ROOT)


def _dataset(path: Path, limit: Optional[int] = None, ids: Optional[list[str]] = None):
    from eval.datasets import DatasetError, load_dataset

    try:
        return load_dataset(path, limit=limit, ids=ids)
    except DatasetError as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _judge(ctx: typer.Context, url: Optional[str], model: Optional[str], workers: int):
    from eval.judge import make_judge

    return make_judge(settings_of(ctx), url=url, model=model, workers=workers)


def _progress():
    return progress_bar(console, TextColumn("{task.fields[note]}", markup=False))


def _report(out_dir: Path, summary: dict, ordered: list, html: bool, as_json: bool) -> None:
    from eval.report import write_report

    paths = write_report(out_dir, summary, ordered, html=html)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        print_summary(summary)
        out.print(f"report: {paths['markdown']}", markup=False, highlight=False)


@eval_app.command("run")
def run_cmd(ctx: typer.Context,
            dataset: Path = typer.Option(DEFAULT_DATASET, help="Gold set JSONL (question, answer, arxiv_id, evidence, kind)"),
            config: list[Path] = typer.Option(..., "--config", help="Configuration TOML (Settings overrides, plus an optional eval table); repeat for side by side"),
            limit: Optional[int] = typer.Option(None, help="Only the first N questions"),
            question: list[str] = typer.Option([], "--id", help="Only these question ids"),
            out_dir: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <home>/eval/<dataset>-<configs>); re-running resumes"),
            fresh: bool = typer.Option(False, help="Discard earlier results in the output folder"),
            judge: bool = typer.Option(True, "--judge/--no-judge", help="Score faithfulness, citations and correctness with the LLM judge"),
            judge_url: Optional[str] = JudgeUrl, judge_model: Optional[str] = JudgeModel, judge_workers: int = JudgeWorkers,
            judge_check: int = typer.Option(0, "--judge-check", help="Also run judge-check on this many pairs (0: reuse <out>/judge_check.json if present)"),
            html: bool = typer.Option(False, help="Also write report.html"),
            as_json: bool = typer.Option(False, "--json", help="Print the summary metrics as JSON")) -> None:
    """Run configurations side by side; per-question JSONL, summary JSON and a Markdown report with plots."""
    from eval.judge import run_judge_check
    from eval.report import summarize
    from eval.run import (JUDGE_CHECK, RESULTS, EvalError, EvalRun, build_pipelines, in_run_order, load_config,
                          saved_judge_check, use_saved_thresholds)

    items = _dataset(dataset, limit, question or None)
    try:
        configs = [load_config(p) for p in config]
    except EvalError as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    base_config, overrides = global_options(ctx)
    settings = settings_of(ctx)
    out_dir = out_dir or settings.home / "eval" / f"{dataset.stem}-{'+'.join(c.name for c in configs)}"
    if fresh and (out_dir / RESULTS).exists():
        (out_dir / RESULTS).unlink()
    the_judge = _judge(ctx, judge_url, judge_model, judge_workers) if judge else None
    pipelines = build_pipelines(configs, base_config, overrides)
    run = EvalRun(items=items, configs=configs, pipelines=pipelines, out_dir=out_dir, judge=the_judge,
                  dataset=_shown(dataset))
    try:
        run.check_resume()
    except EvalError as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    check = None
    with _progress() as progress:
        tasks = {c.name: progress.add_task(c.name, total=len(items), note="") for c in configs}

        def on_event(event):
            r = event.result
            note = "resumed" if event.skipped else (f"[red]{r.error[:60]}[/red]" if r and r.error else
                                                    f"{event.qid} {r.wall_s:.1f}s" if r else event.qid)
            progress.update(tasks[event.config], advance=1, note=note)

        run.on_event = on_event
        # The check runs first: a scored judge takes its P(Yes) thresholds from it.
        if the_judge is not None and judge_check:
            t = progress.add_task("judge-check", total=judge_check, note="")
            check = run_judge_check(items if len(items) * 2 >= judge_check else _dataset(dataset), the_judge,
                                    limit=judge_check, on_pair=lambda p, d, n: progress.update(t, completed=d),
                                    store=_store(settings))
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / JUDGE_CHECK).write_text(check.model_dump_json(indent=2))
        elif the_judge is not None:
            use_saved_thresholds(the_judge, out_dir)
        try:
            results = run.run()
        finally:
            for p in pipelines.values():
                p.close()
    check_data = check.model_dump(mode="json") if check else saved_judge_check(out_dir)
    ordered = in_run_order(results, [c.name for c in configs], [i.id for i in items])
    summary = summarize(ordered, [c.name for c in configs], check_data, dataset=_shown(dataset),
                        judge=the_judge.describe() if the_judge else None)
    _report(out_dir, summary, ordered, html, as_json)


@eval_app.command("report")
def report_cmd(out_dir: Path = typer.Argument(..., help="A run's output folder"),
               html: bool = typer.Option(False, help="Also write report.html"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Re-render summary and report from a run folder's results.jsonl (e.g. after a partial run)."""
    from eval.report import summarize
    from eval.run import load_run, saved_judge_check

    ordered, names, info = load_run(out_dir)
    summary = summarize(ordered, names, saved_judge_check(out_dir), dataset=info.get("dataset", ""),
                        judge=info.get("judge"))
    _report(out_dir, summary, ordered, html, as_json)


@eval_app.command("rejudge")
def rejudge_cmd(ctx: typer.Context,
                out_dir: Path = typer.Argument(..., help="A run's output folder"),
                judge_url: Optional[str] = JudgeUrl, judge_model: Optional[str] = JudgeModel,
                judge_workers: int = JudgeWorkers,
                html: bool = typer.Option(False, help="Also write report.html"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Grade a run's answers for correctness again (after a change to the judge prompt or its judge-check), at
    the thresholds of <out>/judge_check.json; the answers are not generated again. Then re-renders the report."""
    from eval.run import RESULTS, ResultsFile, record_judge, rejudge_correctness, use_saved_thresholds

    judge = _judge(ctx, judge_url, judge_model, judge_workers)
    use_saved_thresholds(judge, out_dir)
    results = ResultsFile(out_dir / RESULTS)
    loaded = list(results.load().values())
    with _progress() as progress:
        t = progress.add_task("rejudge", total=len(loaded), note="")
        for r in rejudge_correctness(loaded, judge):
            results.append(r)
            progress.update(t, advance=1, note=r.qid)
    record_judge(out_dir, judge)
    report_cmd(out_dir, html=html, as_json=as_json)


def print_summary(summary: dict) -> None:
    from eval.report import COST, QUALITY, RETRIEVAL

    configs = list(summary["configs"])
    table = Table(title="Evaluation summary (mean [95% CI])")
    table.add_column("metric")
    for c in configs:
        table.add_column(c, justify="right")
    for m in QUALITY + RETRIEVAL[2:] + COST[:3]:
        cells = []
        for c in configs:
            s = summary["configs"][c]["metrics"][m.key]
            cells.append("–" if s.get("mean") is None else
                         f"{s['mean']:.3f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]")
        table.add_row(m.label + (" *" if m.judged else ""), *cells)
    out.print(table)
    check = summary.get("judge_check")
    if check and check.get("agreement") is not None:
        out.print(f"* judged; judge-check agreement {check['agreement']:.2f}")
    for c in configs:
        s = summary["configs"][c]
        if s["failed"] or s["judge_errors"]:
            out.print(f"[yellow]{data(c)}: {s['failed']} failed questions, {s['judge_errors']} judge errors[/yellow]")


@eval_app.command("retrieval")
def retrieval_cmd(ctx: typer.Context,
                  dataset: Path = typer.Option(DEFAULT_DATASET, help="Gold set JSONL"),
                  mode: list[str] = typer.Option(["dense"], "--mode", help="Retrieval mode(s): dense | bm25 | colbert | hybrid | collapsed"),
                  k: int = typer.Option(10, "-k", help="Passages retrieved per question"),
                  limit: Optional[int] = typer.Option(None, help="Only the first N questions"),
                  out_file: Optional[Path] = typer.Option(None, "--out", help="Write per-question ranks as JSONL here"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Retrieval only (no LLM): paper- and evidence-level recall@1/5/k and MRR per mode, side by side."""
    from assistant.api import Assistant
    from assistant.engine.retrieve import RetrievalError
    from eval.retrieval import gold_retrieval_items, run_retrieval, summarize_retrieval

    items = gold_retrieval_items(_dataset(dataset, limit))
    assistant = Assistant(settings_of(ctx))
    ks = sorted({1, 5, k})
    rows, summary = [], {}
    with _progress() as progress:
        for m in mode:
            task = progress.add_task(m, total=len(items), note="")

            def search(question: str, m: str = m) -> list[tuple[str, str]]:
                return [(h.chunk.arxiv_id, h.chunk.text) for h in assistant.search(question, k=k, mode=m)]

            try:
                results = run_retrieval(items, search, on_question=lambda _: progress.update(task, advance=1))
            except RetrievalError as exc:
                console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
                raise typer.Exit(2)
            rows += [{"mode": m, "qid": r.qid, "kind": r.kind, **r.scores.model_dump()} for r in results]
            summary[m] = {key: round(value, 1 if key == "p50_ms" else 4)
                          for key, value in summarize_retrieval(results, ks).items()}
    assistant.close()
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title=f"Retrieval on {dataset.name} ({len(items)} answerable questions)")
    table.add_column("measure")
    for m in mode:
        table.add_column(m, justify="right")
    for key in next(iter(summary.values())):
        table.add_row(key, *(str(summary[m][key]) for m in mode))
    out.print(table)


@eval_app.command("judge-check")
def judge_check_cmd(ctx: typer.Context,
                    dataset: Path = typer.Option(DEFAULT_DATASET, help="Gold set JSONL"),
                    limit: Optional[int] = typer.Option(None, help="Only the first N pairs"),
                    task: list[str] = typer.Option(["support", "correct"], "--task", help="support | correct"),
                    judge_url: Optional[str] = JudgeUrl, judge_model: Optional[str] = JudgeModel,
                    judge_workers: int = JudgeWorkers,
                    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the pairs and verdicts as JSON here"),
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Measure the judge on pairs whose truth the gold set gives (gold evidence vs gold answer; another paper's evidence)."""
    from eval.judge import run_judge_check

    items = _dataset(dataset)
    judge = _judge(ctx, judge_url, judge_model, judge_workers)
    with _progress() as progress:
        t = progress.add_task("judge-check", total=None, note="")
        result = run_judge_check(items, judge, tasks=task, limit=limit, store=_store(settings_of(ctx)),
                                 on_pair=lambda p, d, n: progress.update(t, completed=d, total=n))
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(result.model_dump_json(indent=2))
    if as_json:
        out.print_json(result.model_dump_json(exclude={"pairs"}))
        return
    table = Table(title=f"Judge-check: {judge.model} ({result.seconds:.0f} s)")
    for col in ("task", "pairs", "agreement", "TPR", "TNR", "kappa", "errors"):
        table.add_column(col, justify="right")
    for name, a in result.tasks.items():
        table.add_row(name, str(a.n), str(a.agreement), str(a.true_positive_rate), str(a.true_negative_rate),
                      str(a.kappa), str(a.errors))
    out.print(table)
    out.print(f"overall agreement: {result.agreement}")


@eval_app.command("score")
def score_cmd(ctx: typer.Context,
              records: Path = typer.Argument(..., help="JSONL of {question, answer, passages: [str | {text}]} from any RAG system"),
              judge_url: Optional[str] = JudgeUrl, judge_model: Optional[str] = JudgeModel,
              judge_workers: int = JudgeWorkers,
              out_file: Optional[Path] = typer.Option(None, "--out", help="Write per-record verdicts as JSONL here"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Faithfulness of any system's answers to the passages they used: per-sentence verdicts + score."""
    from eval.datasets import DatasetError, load_scoring_records
    from eval.metrics import mean_faithfulness, score_faithfulness

    try:
        recs = load_scoring_records(records)
    except DatasetError as exc:
        console.print(f"[red]{data(exc)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    judge = _judge(ctx, judge_url, judge_model, judge_workers)
    results = []
    with _progress() as progress:
        t = progress.add_task("scoring", total=len(recs), note="")
        for rec in recs:
            results.append(score_faithfulness(rec.answer, rec.passages, judge))
            progress.update(t, advance=1)
    scored = [{"id": rec.id, "question": rec.question, **r.model_dump(mode="json")} for rec, r in zip(recs, results)]
    summary = {**mean_faithfulness(results), "judge": judge.describe()}
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text("".join(json.dumps(s) + "\n" for s in scored))
    if as_json:
        out.print_json(json.dumps({"summary": summary, "records": scored}))
        return
    for s in scored:
        out.print(f"[bold]{data(s['id'])}[/bold] faithfulness {s['score'] if s['score'] is not None else '–'}")
        for v in s["sentences"]:
            mark = {True: "[green]supported[/green]", False: "[red]unsupported[/red]", None: "[yellow]error[/yellow]"}[v["supported"]]
            out.print(f"  {mark}  {data(v['sentence'])}", highlight=False)
    out.print(f"mean faithfulness {summary['faithfulness']} over {summary['scored']} answers; "
              f"{summary['judge_errors']} judge errors")
