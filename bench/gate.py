"""Calibrate the answerability gate (and the dense relevance gate) on a gold set with unanswerable questions.

    python bench/gate.py --dataset ../shared/eval/dev.jsonl [--home DIR] [--llm-url URL --model NAME] [--mode hybrid]

For every question: the passages the answer would read, the best dense cosine (the relevance gate)
and the model's P(Yes) that the passages answer it (the answerability gate). Prints, per gate, the
AUC for telling answerable from unanswerable questions and, per threshold, the share of answerable
questions still answered and of unanswerable ones refused.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from assistant.core.config import load_settings  # noqa: E402
from assistant.engine.gate import answerability  # noqa: E402
from eval.judge import auc  # noqa: E402


def table(name: str, rows: list[tuple[float, bool]], cuts: list[float]) -> None:
    answerable = [s for s, a in rows if a]
    unanswerable = [s for s, a in rows if not a]
    print(f"\n{name}: AUC {auc(rows)} (answerable median {statistics.median(answerable):.3f}, "
          f"unanswerable median {statistics.median(unanswerable):.3f})")
    print("| threshold | answerable answered | unanswerable refused |\n|---|---|---|")
    for cut in cuts:
        kept = sum(s >= cut for s in answerable)
        refused = sum(s < cut for s in unanswerable)
        print(f"| {cut:.2f} | {kept}/{len(answerable)} | {refused}/{len(unanswerable)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--llm-url")
    parser.add_argument("--model")
    parser.add_argument("--mode", default=None)
    parser.add_argument("--json", type=Path, help="Also write the per-question scores here")
    args = parser.parse_args()
    overrides = {k: v for k, v in {"home": args.home, "llm_base_url": args.llm_url, "llm_model": args.model,
                                   "answer_gate": 0.5}.items() if v is not None}
    assistant = Assistant(load_settings(**overrides))
    settings = assistant.settings
    llm = assistant.llm()
    items = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    mode = args.mode or settings.retrieval_mode
    rows, start = [], time.perf_counter()
    for item in items:
        hits = assistant.search(item["question"], settings.top_k, mode)
        top = assistant.library.dense.search(item["question"], 1)
        gate = answerability(item["question"], hits, llm, settings)
        answerable = bool(item.get("answer"))
        rows.append({"id": item["id"], "answerable": answerable, "cosine": top[0][1] if top else 0.0,
                     "p_yes": gate.score, "gate_s": gate.seconds, "error": gate.error})
        print(f"{item['id']} answerable={answerable} cosine={rows[-1]['cosine']:.3f} p_yes={gate.score} "
              f"({gate.seconds:.1f} s)", flush=True)
    print(f"\n{len(rows)} questions, mode {mode}, model {llm.model}, {time.perf_counter() - start:.0f} s; "
          f"gate median {statistics.median(r['gate_s'] for r in rows):.2f} s")
    table("relevance gate (best dense cosine)", [(r["cosine"], r["answerable"]) for r in rows],
          [0.3, 0.4, 0.45, 0.5, 0.55, 0.6])
    scored = [(r["p_yes"], r["answerable"]) for r in rows if r["p_yes"] is not None]
    if scored:
        table("answerability gate (P(Yes))", scored, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
