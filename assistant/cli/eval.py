"""`paper-assistant eval ...`: run configurations side by side, retrieval-only recall, judge-check, scoring, reports."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import TextColumn

from assistant.cli.common import console, global_options, out, settings_of
from foundation.config import PROJECT_ROOT
from assistant.cli.progress import progress_bar
from rich.table import Table

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate answers and retrieval on a gold set; score any RAG system's answers.")

DEFAULT_DATASET = PROJECT_ROOT.parent / "shared" / "eval" / "dev.jsonl"
JudgeUrl = typer.Option(None, "--judge-url", envvar="PAPER_ASSISTANT_JUDGE_URL",
                        help="OpenAI-compatible endpoint of the judge (default: the answering LLM's)")
JudgeModel = typer.Option(None, "--judge-model", envvar="PAPER_ASSISTANT_JUDGE_MODEL",
                          help="Model name of the judge (default: the answering model)")
JudgeWorkers = typer.Option(2, "--judge-workers", help="Judge requests sent at once (vLLM batches them)")


def _store(settings):
    """The library's store, for the judge-check's near-miss pairs (the passage beside the evidence)."""
    from indexes.store import Store

    path = settings.index_dir / "library.sqlite"
    return Store(path) if path.exists() else None


def _shown(path: Path) -> str:
    """A dataset path as reports record it: relative to the project when it can be (reports are committed)."""
    import os

    return os.path.relpath(path.resolve(), PROJECT_ROOT)


def _dataset(path: Path, limit: Optional[int] = None, ids: Optional[list[str]] = None):
    from eval.datasets import DatasetError, load_dataset

    try:
        return load_dataset(path, limit=limit, ids=ids)
    except DatasetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2)


def _judge(ctx: typer.Context, url: Optional[str], model: Optional[str], workers: int):
    from eval.judge import make_judge

    return make_judge(settings_of(ctx), url=url, model=model, workers=workers)


def _use_saved_thresholds(judge, out_dir: Path) -> None:
    """A scored judge takes the P(Yes) thresholds of the run folder's judge-check, where there is one."""
    from eval.run import JUDGE_CHECK

    if judge.scored and (out_dir / JUDGE_CHECK).exists():
        saved = json.loads((out_dir / JUDGE_CHECK).read_text()).get("judge", {}).get("thresholds")
        judge.thresholds.update(saved or {})


def _progress():
    return progress_bar(console, TextColumn("{task.fields[note]}"))


def _report(out_dir: Path, summary: dict, ordered: list, html: bool, as_json: bool) -> None:
    from eval.report import write_report

    paths = write_report(out_dir, summary, ordered, html=html)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        print_summary(summary)
        out.print(f"report: {paths['markdown']}")


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
    from eval.report import summarize
    from eval.run import JUDGE_CHECK, RESULTS, EvalError, EvalRun, build_pipelines, load_config

    items = _dataset(dataset, limit, question or None)
    try:
        configs = [load_config(p) for p in config]
    except EvalError as exc:
        console.print(f"[red]{exc}[/red]")
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
        console.print(f"[red]{exc}[/red]")
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
            from eval.judge import run_judge_check

            t = progress.add_task("judge-check", total=judge_check, note="")
            check = run_judge_check(items if len(items) * 2 >= judge_check else _dataset(dataset), the_judge,
                                    limit=judge_check, on_pair=lambda p, d, n: progress.update(t, completed=d),
                                    store=_store(settings))
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / JUDGE_CHECK).write_text(check.model_dump_json(indent=2))
        elif the_judge is not None:
            _use_saved_thresholds(the_judge, out_dir)
        try:
            results = run.run()
        finally:
            for p in pipelines.values():
                p.close()
    if check is None and (out_dir / JUDGE_CHECK).exists():
        check_data = json.loads((out_dir / JUDGE_CHECK).read_text())
    else:
        check_data = check.model_dump(mode="json") if check else None
    ordered = [results[(c.name, i.id)] for i in items for c in configs if (c.name, i.id) in results]
    summary = summarize(ordered, [c.name for c in configs], check_data, dataset=_shown(dataset),
                        judge=the_judge.describe() if the_judge else None)
    _report(out_dir, summary, ordered, html, as_json)


@eval_app.command("report")
def report_cmd(out_dir: Path = typer.Argument(..., help="A run's output folder"),
               html: bool = typer.Option(False, help="Also write report.html"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Re-render summary and report from a run folder's results.jsonl (e.g. after a partial run)."""
    from eval.report import summarize
    from eval.run import JUDGE_CHECK, RESULTS, RUN_INFO, ResultsFile

    info = json.loads((out_dir / RUN_INFO).read_text()) if (out_dir / RUN_INFO).exists() else {}
    results = ResultsFile(out_dir / RESULTS).load()
    names = [c["name"] for c in info.get("configs", [])] or list(dict.fromkeys(k[0] for k in results))
    order = info.get("questions") or list(dict.fromkeys(k[1] for k in results))
    ordered = [results[(c, q)] for q in order for c in names if (c, q) in results]
    check = json.loads((out_dir / JUDGE_CHECK).read_text()) if (out_dir / JUDGE_CHECK).exists() else None
    summary = summarize(ordered, names, check, dataset=info.get("dataset", ""), judge=info.get("judge"))
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
    from eval.run import RESULTS, RUN_INFO, ResultsFile, rejudge_correctness

    judge = _judge(ctx, judge_url, judge_model, judge_workers)
    _use_saved_thresholds(judge, out_dir)
    results = ResultsFile(out_dir / RESULTS)
    loaded = list(results.load().values())
    with _progress() as progress:
        t = progress.add_task("rejudge", total=len(loaded), note="")
        for r in rejudge_correctness(loaded, judge):
            results.append(r)
            progress.update(t, advance=1, note=r.qid)
    if (out_dir / RUN_INFO).exists():  # the report names the judge and thresholds that graded the run
        info = json.loads((out_dir / RUN_INFO).read_text())
        info["judge"] = judge.describe()
        (out_dir / RUN_INFO).write_text(json.dumps(info, indent=2))
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
            out.print(f"[yellow]{c}: {s['failed']} failed questions, {s['judge_errors']} judge errors[/yellow]")


@eval_app.command("retrieval")
def retrieval_cmd(ctx: typer.Context,
                  dataset: Path = typer.Option(DEFAULT_DATASET, help="Gold set JSONL"),
                  mode: list[str] = typer.Option(["dense"], "--mode", help="Retrieval mode(s): dense | bm25 | colbert | hybrid | collapsed"),
                  k: int = typer.Option(10, "-k", help="Passages retrieved per question"),
                  limit: Optional[int] = typer.Option(None, help="Only the first N questions"),
                  out_file: Optional[Path] = typer.Option(None, "--out", help="Write per-question ranks as JSONL here"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Retrieval only (no LLM): paper- and evidence-level recall@1/5/k and MRR per mode, side by side."""
    import numpy as np

    from assistant.api import Assistant
    from assistant.engine.retrieve import RetrievalError
    from eval.metrics import retrieval_scores

    items = [i for i in _dataset(dataset, limit) if i.answerable and i.arxiv_id and i.evidence]
    assistant = Assistant(settings_of(ctx))
    ks = sorted({1, 5, k})
    rows, summary = [], {}
    with _progress() as progress:
        for m in mode:
            task = progress.add_task(m, total=len(items), note="")
            scores, lat = [], []
            for item in items:
                start = time.perf_counter()
                try:
                    hits = assistant.search(item.question, k=k, mode=m)
                except RetrievalError as exc:
                    console.print(f"[red]{exc}[/red]")
                    raise typer.Exit(2)
                lat.append(time.perf_counter() - start)
                s = retrieval_scores(item.arxiv_id, item.evidence, [(h.chunk.arxiv_id, h.chunk.text) for h in hits])
                scores.append(s)
                rows.append({"mode": m, "qid": item.id, "kind": item.kind, **s.model_dump()})
                progress.update(task, advance=1)
            summary[m] = {"questions": len(items),
                          **{f"paper_recall@{x}": round(float(np.mean([s.paper_recall(x) for s in scores])), 4) for x in ks},
                          **{f"evidence_recall@{x}": round(float(np.mean([s.evidence_recall(x) for s in scores])), 4) for x in ks},
                          "paper_mrr": round(float(np.mean([s.paper_rr for s in scores])), 4),
                          "evidence_mrr": round(float(np.mean([s.evidence_rr for s in scores])), 4),
                          "p50_ms": round(1000 * float(np.median(lat)), 1)}
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
    from eval.metrics import score_faithfulness

    try:
        recs = load_scoring_records(records)
    except DatasetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2)
    judge = _judge(ctx, judge_url, judge_model, judge_workers)
    scored = []
    with _progress() as progress:
        t = progress.add_task("scoring", total=len(recs), note="")
        for rec in recs:
            result = score_faithfulness(rec.answer, rec.passages, judge)
            scored.append({"id": rec.id, "question": rec.question, **result.model_dump(mode="json")})
            progress.update(t, advance=1)
    values = [s["score"] for s in scored if s["score"] is not None]
    summary = {"records": len(scored), "scored": len(values), "judge": judge.describe(),
               "faithfulness": round(sum(values) / len(values), 4) if values else None,
               "judge_errors": sum(s["n_errors"] for s in scored)}
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text("".join(json.dumps(s) + "\n" for s in scored))
    if as_json:
        out.print_json(json.dumps({"summary": summary, "records": scored}))
        return
    for s in scored:
        out.print(f"[bold]{s['id']}[/bold] faithfulness {s['score'] if s['score'] is not None else '–'}")
        for v in s["sentences"]:
            mark = {True: "[green]supported[/green]", False: "[red]unsupported[/red]", None: "[yellow]error[/yellow]"}[v["supported"]]
            out.print(f"  {mark}  {v['sentence']}")
    out.print(f"mean faithfulness {summary['faithfulness']} over {summary['scored']} answers; "
              f"{summary['judge_errors']} judge errors")
