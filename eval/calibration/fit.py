"""Fit the answerability gate on the corpus-built calibration set; report its trade-off curve.

    python -m eval.calibration.fit [--signals eval/calibration/signals.jsonl] [--false-abstention 0.10]

Logistic regression over standardised signals (assistant/engine/gate.py Signals), fitted on the calibration
questions only (answerable vs. scoped and swapped); the dev questions are scored, never fitted. The threshold
is the operating point where the calibration set's false-abstention rate (answerable questions declined)
meets --false-abstention. Writes assistant/engine/answerability.json and eval/calibration/report.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from assistant.engine.gate import MODEL_FILE

HERE = Path(__file__).parent
BASE = ("relevance", "bm25", "maxsim", "sentence_cosine", "term_coverage", "rare_coverage", "name_coverage",
        "number_coverage")


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def fit(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    means, scales = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit((x - means) / scales, y)
    return means, scales, model.coef_[0], float(model.intercept_[0])


def probability(x: np.ndarray, means, scales, weights, bias) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(((x - means) / scales) @ weights + bias)))


def grouped_cv(x: np.ndarray, y: np.ndarray, groups: list[str], folds: int = 5) -> np.ndarray:
    """Out-of-fold probabilities; the conditions of one question stay in one fold."""
    keys = sorted(set(groups))
    fold_of = {k: i % folds for i, k in enumerate(np.random.RandomState(0).permutation(keys))}
    fold = np.array([fold_of[g] for g in groups])
    out = np.zeros(len(y))
    for f in range(folds):
        train, test = fold != f, fold == f
        out[test] = probability(x[test], *fit(x[train], y[train]))
    return out


def matrix(rows: list[dict], features: tuple[str, ...]) -> np.ndarray:
    return np.array([[float(r[f]) if r.get(f) is not None else np.nan for f in features] for r in rows])


def curve(p: np.ndarray, rows: list[dict], thresholds) -> list[dict]:
    out = []
    for t in thresholds:
        row = {"threshold": round(float(t), 3)}
        for cond in ("answerable", "scoped", "swapped"):
            sel = np.array([r["condition"] == cond for r in rows])
            if sel.any():
                row[f"{cond}_declined"] = round(float((p[sel] < t).mean()), 3)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--signals", type=Path, default=HERE / "signals.jsonl")
    ap.add_argument("--false-abstention", type=float, default=0.10)
    ap.add_argument("--model-name", default="", help="Name of the LLM whose P(Yes) is in the signals")
    ap.add_argument("--out", type=Path, default=MODEL_FILE)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.signals.read_text().splitlines() if line.strip()]
    cal = [r for r in rows if r["condition"] != "dev"]
    dev = [r for r in rows if r["condition"] == "dev"]
    y = np.array([r["label"] for r in cal])
    y_dev = np.array([r["label"] for r in dev])
    groups = [r["source"] for r in cal]  # the three conditions of one question stay in one fold
    variants = {"retrieval": BASE}
    if all(r.get("p_yes") is not None for r in cal) and args.model_name:
        variants[args.model_name] = BASE + ("p_yes",)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {"models": {}}
    report = ["# Answerability gate: calibration", "",
              f"{len(cal)} calibration samples ({int(y.sum())} answerable, {int((1 - y).sum())} not: "
              f"{sum(r['condition'] == 'scoped' for r in cal)} scoped to papers that cannot answer, "
              f"{sum(r['condition'] == 'swapped' for r in cal)} with a name the corpus never mentions); "
              f"dev: {int(y_dev.sum())} answerable, {int((1 - y_dev).sum())} unanswerable (scored, not fitted).", ""]
    for name, features in variants.items():
        x, x_dev = matrix(cal, features), matrix(dev, features)
        oof = grouped_cv(x, y, groups)
        params = fit(x, y)
        p_cal = probability(x, *params)
        p_dev = probability(x_dev, *params) if len(dev) else np.zeros(0)
        answerable = p_cal[y == 1]
        threshold = float(np.quantile(answerable, args.false_abstention))  # this share of answerables declined
        existing["models"][name] = {"features": list(features), "means": params[0].round(6).tolist(),
                                    "scales": params[1].round(6).tolist(), "weights": params[2].round(6).tolist(),
                                    "bias": round(params[3], 6), "model": name if name != "retrieval" else ""}
        existing.setdefault("operating_points", {})[name] = {
            "threshold": round(threshold, 4), "calibration_false_abstention": args.false_abstention}
        report += [f"## {name} ({', '.join(features)})", "",
                   f"- AUC, 5-fold grouped cross-validation on the calibration set: {auc(oof, y):.3f}",
                   f"- AUC on dev (not fitted): {auc(p_dev, y_dev):.3f}" if len(dev) else "",
                   f"- operating point: threshold {threshold:.3f} (declines {args.false_abstention:.0%} of the "
                   f"calibration set's answerable questions)",
                   f"- dev at that threshold: {int((p_dev[y_dev == 0] < threshold).sum())} of "
                   f"{int((y_dev == 0).sum())} unanswerable declined, {int((p_dev[y_dev == 1] < threshold).sum())} "
                   f"of {int((y_dev == 1).sum())} answerable declined" if len(dev) else "",
                   "", "weights (standardised): " + ", ".join(f"{f} {w:+.2f}" for f, w in zip(features, params[2])), "",
                   "| threshold | answerable declined | scoped declined | swapped declined | dev answerable declined | dev unanswerable declined |",
                   "|---|---|---|---|---|---|"]
        for t, row in zip(np.linspace(0.1, 0.9, 9), curve(p_cal, cal, np.linspace(0.1, 0.9, 9))):
            dev_a = f"{int((p_dev[y_dev == 1] < t).sum())}/{int((y_dev == 1).sum())}" if len(dev) else "-"
            dev_u = f"{int((p_dev[y_dev == 0] < t).sum())}/{int((y_dev == 0).sum())}" if len(dev) else "-"
            report.append(f"| {t:.1f} | {row.get('answerable_declined', '-')} | {row.get('scoped_declined', '-')} | "
                          f"{row.get('swapped_declined', '-')} | {dev_a} | {dev_u} |")
        report.append("")
    args.out.write_text(json.dumps(existing, indent=1) + "\n")
    (HERE / "report.md").write_text("\n".join(line for line in report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
