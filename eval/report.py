"""Summary metrics with bootstrap confidence intervals, and the Markdown/HTML report with PNG plots."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from eval.run import QuestionResult

BOOTSTRAP_SAMPLES = 2000
Extract = Callable[[QuestionResult], "float | None"]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    extract: Extract
    judged: bool = False  # depends on the LLM judge: reported with the judge-check agreement
    group: str = "quality"


def _faith(r: QuestionResult) -> float | None:
    return r.faithfulness.score if r.faithfulness else None


def _cite_recall(r: QuestionResult) -> float | None:
    return r.citations.recall if r.citations else None


def _cite_precision(r: QuestionResult) -> float | None:
    return r.citations.precision if r.citations else None


def _correct(r: QuestionResult) -> float | None:
    c = r.correctness
    if c is None or (c.judged is None and not c.error):
        return None  # not judged (no judge): leave it out rather than count it wrong
    return 1.0 if c.judged else 0.0  # a judge error counts as not correct


def _f1(r: QuestionResult) -> float | None:
    return r.correctness.token_f1 if r.correctness else None


def _declined(r: QuestionResult) -> float | None:
    return float(r.output.abstained) if not r.answerable and r.output else None


def _answered(r: QuestionResult) -> float | None:
    return float(not r.output.abstained) if r.answerable and r.output else None


def _abst_ok(r: QuestionResult) -> float | None:
    return float(r.abstention_ok) if r.abstention_ok is not None else None


def _ev_recall(k: int) -> Extract:
    return lambda r: r.retrieval.evidence_recall(k) if r.retrieval else None


def _paper_recall(k: int) -> Extract:
    return lambda r: r.retrieval.paper_recall(k) if r.retrieval else None


def _timing(name: str) -> Extract:
    return lambda r: r.output.timings.get(name) if r.output else None


def _tokens(name: str) -> Extract:
    return lambda r: r.output.tokens.get(name) if r.output and r.output.tokens else None


QUALITY = [
    Metric("faithfulness", "Faithfulness", _faith, judged=True),
    Metric("grounded", "Grounded sentences (judge-free)", lambda r: r.grounding.score if r.grounding else None),
    Metric("citation_recall", "Citation recall", _cite_recall, judged=True),
    Metric("citation_precision", "Citation precision", _cite_precision, judged=True),
    Metric("correct", "Correct (judged)", _correct, judged=True),
    Metric("token_f1", "Token F1", _f1),
    Metric("unanswerable_declined", "Unanswerable declined", _declined),
    Metric("answerable_answered", "Answerable answered", _answered),
    Metric("abstention_accuracy", "Abstention accuracy", _abst_ok),
]
RETRIEVAL = [
    Metric("paper_recall@1", "Paper recall@1", _paper_recall(1), group="retrieval"),
    Metric("paper_recall@8", "Paper recall@8", _paper_recall(8), group="retrieval"),
    Metric("evidence_recall@1", "Evidence recall@1", _ev_recall(1), group="retrieval"),
    Metric("evidence_recall@5", "Evidence recall@5", _ev_recall(5), group="retrieval"),
    Metric("evidence_recall@8", "Evidence recall@8", _ev_recall(8), group="retrieval"),
    Metric("evidence_mrr", "Evidence MRR", lambda r: r.retrieval.evidence_rr if r.retrieval else None, group="retrieval"),
]
COST = [
    Metric("retrieve_s", "Retrieval (s)", _timing("retrieve_s"), group="latency"),
    Metric("first_token_s", "First token (s)", _timing("first_token_s"), group="latency"),
    Metric("total_s", "Total (s)", _timing("total_s"), group="latency"),
    Metric("llm_calls", "LLM calls", _tokens("llm_calls"), group="tokens"),
    Metric("prompt_chars", "Prompt characters", _tokens("prompt_chars"), group="tokens"),
    Metric("completion_tokens", "Completion tokens", _tokens("completion_tokens"), group="tokens"),
]
METRICS = QUALITY + RETRIEVAL + COST


def bootstrap_ci(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap over questions (Efron & Tibshirani 1993)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(arr.mean())
    if arr.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(samples, arr.size))].mean(axis=1)
    return mean, float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def _stat(values: list[float], metric: Metric) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None}
    mean, lo, hi = bootstrap_ci(values)
    out = {"n": len(values), "mean": round(mean, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    if metric.group in ("latency", "tokens"):
        out.update(median=round(float(np.median(values)), 3), p90=round(float(np.quantile(values, 0.9)), 3))
    return out


def summarize(results: Iterable[QuestionResult], configs: Sequence[str], judge_check: dict | None = None,
              dataset: str = "", judge: dict | None = None) -> dict[str, Any]:
    """Per configuration: every metric's mean, bootstrap 95% CI and n; failures and judge errors counted."""
    by_config: dict[str, list[QuestionResult]] = {c: [] for c in configs}
    for r in results:
        if r.config in by_config:
            by_config[r.config].append(r)
    summary: dict[str, Any] = {"dataset": dataset, "judge": judge, "configs": {}}
    if judge_check:
        summary["judge_check"] = {"agreement": judge_check.get("agreement"),
                                  "tasks": judge_check.get("tasks"), "judge": judge_check.get("judge")}
    for name, rows in by_config.items():
        ok = [r for r in rows if not r.error]
        metrics = {m.key: _stat([v for v in (m.extract(r) for r in ok) if v is not None], m) for m in METRICS}
        judge_errors = sum((r.faithfulness.n_errors if r.faithfulness else 0) +
                           (r.citations.n_errors if r.citations else 0) +
                           (1 if r.correctness and r.correctness.judged is None and r.correctness.error
                            and r.correctness.error != "abstained" else 0) for r in ok)
        summary["configs"][name] = {"questions": len(rows), "failed": len(rows) - len(ok),
                                    "failures": [f"{r.qid}: {r.error}" for r in rows if r.error][:10],
                                    "judge_errors": judge_errors, "metrics": metrics,
                                    "by_kind": _by_kind(ok)}
    return summary


def _by_kind(rows: list[QuestionResult]) -> dict[str, dict[str, Any]]:
    kinds = sorted({r.kind for r in rows})
    out = {}
    for kind in kinds:
        sub = [r for r in rows if r.kind == kind]
        vals = {m.key: [v for v in (m.extract(r) for r in sub) if v is not None]
                for m in (QUALITY[0], QUALITY[3], QUALITY[4], RETRIEVAL[4], QUALITY[7])}
        out[kind] = {"n": len(sub), **{k: round(float(np.mean(v)), 3) if v else None for k, v in vals.items()}}
    return out


# --------------------------------------------------------------------------- plots

def plot_quality(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in QUALITY + [RETRIEVAL[4]]]
    configs = list(summary["configs"])
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(metrics) * max(1, len(configs)) / 2), 4.5))
    width = 0.8 / max(1, len(configs))
    x = np.arange(len(metrics))
    for i, name in enumerate(configs):
        stats = [summary["configs"][name]["metrics"][m.key] for m in metrics]
        means = [s["mean"] if s.get("mean") is not None else np.nan for s in stats]
        lo = [m - s["ci95"][0] if s.get("mean") is not None else 0 for m, s in zip(means, stats)]
        hi = [s["ci95"][1] - m if s.get("mean") is not None else 0 for m, s in zip(means, stats)]
        ax.bar(x + (i - (len(configs) - 1) / 2) * width, means, width, yerr=[lo, hi], capsize=3, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels([m.label + (" *" if m.judged else "") for m in metrics], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over questions (95% bootstrap CI)")
    ax.set_title("Quality per configuration (* = judged by the LLM judge)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_latency(results: Sequence[QuestionResult], configs: Sequence[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = [("retrieve_s", "retrieval"), ("first_token_s", "first token"), ("total_s", "total")]
    fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 4), sharey=False)
    for ax, (key, label) in zip(axes, fields):
        data = [[r.output.timings[key] for r in results
                 if r.config == c and r.output and r.output.timings.get(key) is not None] for c in configs]
        if any(data):
            ax.boxplot([d or [np.nan] for d in data], showfliers=True)
            ax.set_xticks(range(1, len(configs) + 1))
            ax.set_xticklabels(configs, rotation=20, ha="right")
        ax.set_title(f"{label} latency (s)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- the report

def _fmt(stat: dict[str, Any], ci: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if ci and "ci95" in stat:
        return f"{stat['mean']:.3f} [{stat['ci95'][0]:.2f}, {stat['ci95'][1]:.2f}] (n={stat['n']})"
    return f"{stat['mean']:.3f}"


def render_markdown(summary: dict[str, Any], plots: dict[str, str], results: Sequence[QuestionResult]) -> str:
    configs = list(summary["configs"])
    lines = ["# Evaluation report", ""]
    if summary.get("dataset"):
        lines.append(f"Dataset: `{summary['dataset']}`")
    q = {c: summary["configs"][c]["questions"] for c in configs}
    lines.append("Questions per configuration: " + ", ".join(f"{c} {n}" for c, n in q.items()))
    judge = summary.get("judge") or {}
    check = summary.get("judge_check")
    if judge:
        if judge.get("thresholds"):
            cuts = ", ".join(f"{t} {v}" for t, v in judge["thresholds"].items())
            lines.append(f"Judge: `{judge.get('model', '?')}`, scored: a Yes/No prompt, verdict = P(Yes) of the first "
                         f"token >= a per-task threshold fitted on the judge-check pairs ({cuts}).")
        else:
            lines.append(f"Judge: `{judge.get('model', '?')}` (temperature 0, JSON-schema verdicts, one retry).")
    if check and check.get("agreement") is not None:
        tasks = check.get("tasks") or {}
        parts = [f"{t}: {v['agreement']:.2f} (TPR {v['true_positive_rate']}, TNR {v['true_negative_rate']}, "
                 f"kappa {v['kappa']}, n={v['n']}" + (f", AUC {v['auc']}" if v.get("auc") is not None else "") + ")"
                 for t, v in tasks.items() if v.get("agreement") is not None]
        lines.append(f"**Judge-check agreement {check['agreement']:.2f}** on pairs of known truth — " + "; ".join(parts)
                     + ". Metrics marked * depend on this judge; read them with this figure.")
    elif judge:
        lines.append("Judge-check: not run for this report (`paper-assistant eval judge-check`).")
    lines += ["", "Means over questions with 95% percentile-bootstrap CIs over questions (2,000 resamples).", ""]

    def table(metrics, ci=True):
        out = ["| metric | " + " | ".join(configs) + " |", "|---|" + "---|" * len(configs)]
        for m in metrics:
            out.append(f"| {m.label}{' *' if m.judged else ''} | " +
                       " | ".join(_fmt(summary["configs"][c]["metrics"][m.key], ci) for c in configs) + " |")
        return out

    lines += ["## Answer quality", ""] + table(QUALITY) + [""]
    if "quality" in plots:
        lines += [f"![quality]({plots['quality']})", ""]
    lines += ["## Retrieval (passages given to the model; answerable questions)", ""] + table(RETRIEVAL) + [""]
    lines += ["## Latency and tokens", "", "| measure | " + " | ".join(configs) + " |", "|---|" + "---|" * len(configs)]
    for m in COST:
        cells = []
        for c in configs:
            s = summary["configs"][c]["metrics"][m.key]
            cells.append("–" if s.get("mean") is None else f"median {s['median']:g}, p90 {s['p90']:g}, mean {s['mean']:g}")
        lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
    lines.append("")
    if "latency" in plots:
        lines += [f"![latency]({plots['latency']})", ""]
    lines += ["Token counts: completion tokens are exact where the server reports usage and one per streamed piece "
              "otherwise; prompts are counted in characters.", ""]
    lines += ["## By question kind", ""]
    for c in configs:
        kinds = summary["configs"][c]["by_kind"]
        lines += [f"**{c}**", "", "| kind | n | faithfulness | correct | token F1 | evidence@8 | abstention ok |",
                  "|---|---|---|---|---|---|---|"]
        for kind, v in kinds.items():
            cells = [v.get(k) for k in ("faithfulness", "correct", "token_f1", "evidence_recall@8", "abstention_accuracy")]
            lines.append(f"| {kind} | {v['n']} | " + " | ".join("–" if x is None else f"{x:.2f}" for x in cells) + " |")
        lines.append("")
    lines += ["## Failures and judge errors", ""]
    for c in configs:
        s = summary["configs"][c]
        lines.append(f"- {c}: {s['failed']} failed questions, {s['judge_errors']} judge errors (counted as not supported)")
        lines += [f"  - {f}" for f in s["failures"]]
    lines += ["", "Per-question provenance (passages, scores, answers, verdicts): `results.jsonl`. "
              "Metric definitions: `eval/README.md`.", ""]
    return "\n".join(lines)


def render_html(markdown_text: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}"
             "img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>{style}</style></head><body>{body}</body></html>"


def write_report(out_dir: Path, summary: dict[str, Any], results: Sequence[QuestionResult], html: bool = False) -> dict[str, Path]:
    out_dir = Path(out_dir)
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    configs = list(summary["configs"])
    plots = {"quality": plot_quality(summary, plots_dir / "quality.png"),
             "latency": plot_latency(results, configs, plots_dir / "latency.png")}
    rel = {k: str(p.relative_to(out_dir)) for k, p in plots.items()}
    md = render_markdown(summary, rel, results)
    paths = {"summary": out_dir / "summary.json", "markdown": out_dir / "report.md", **plots}
    paths["summary"].write_text(json.dumps(summary, indent=2))
    paths["markdown"].write_text(md)
    if html:
        paths["html"] = out_dir / "report.html"
        paths["html"].write_text(render_html(md))
    return paths
