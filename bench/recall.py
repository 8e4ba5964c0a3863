"""Retrieval recall on a gold set: paper-level and evidence-level recall@1/5/10 and MRR, per mode side by side.

    python bench/recall.py --dataset ../shared/eval/dev.jsonl [--mode dense --mode hybrid] [--home DIR] [--json]

The metrics are eval/retrieval.py's, the same as `paper-assistant eval retrieval`: an evidence hit is
eval.metrics.evidence_hit (the passage holds the gold evidence string after whitespace and text normalisation,
or half of it where a chunk boundary cuts it). evidence@k counts a question as hit when any of its evidence
strings is in the top k (eval's evidence_any@k), evidence_all@k when all are.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.retrieval import gold_retrieval_items, run_retrieval, summarize_retrieval  # noqa: E402
from foundation.config import load_settings  # noqa: E402

KS = (1, 5, 10)
# This bench's column names for eval/retrieval.py's measures (the README's retrieval table uses them).
COLUMNS = {**{f"paper@{k}": f"paper_recall@{k}" for k in KS}, **{f"evidence@{k}": f"evidence_any@{k}" for k in KS},
           **{f"evidence_all@{k}": f"evidence_all@{k}" for k in KS},
           "paper_mrr": "paper_mrr", "evidence_mrr": "evidence_mrr", "p50_ms": "p50_ms"}


def evaluate(assistant: Assistant, items: list, mode: str, k_max: int = 10) -> dict:
    def search(question: str) -> list[tuple[str, str]]:
        return [(h.chunk.arxiv_id, h.chunk.text) for h in assistant.search(question, k=k_max, mode=mode)]

    summary = summarize_retrieval(run_retrieval(items, search), KS)
    return {"mode": mode, "questions": summary["questions"],
            **{col: round(summary[key], 1 if col == "p50_ms" else 3) for col, key in COLUMNS.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--mode", action="append", help="dense | bm25 | colbert | hybrid | collapsed (repeatable)")
    parser.add_argument("--home", type=Path, help="Index home (default: settings)")
    parser.add_argument("--kind", help="Only questions of this kind (fact, mechanism, why, comparison, synthesis)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    items = [i for i in gold_retrieval_items(load_dataset(args.dataset)) if not args.kind or i.kind == args.kind]
    assistant = Assistant(load_settings(home=args.home))
    modes = args.mode or ["dense"]
    assistant.search("warm up", k=1, mode=modes[0])
    results = [evaluate(assistant, items, mode) for mode in modes]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    cols = ["mode", "questions", *[f"paper@{k}" for k in KS], "paper_mrr", *[f"evidence@{k}" for k in KS],
            "evidence_mrr", "p50_ms"]
    print(" | ".join(f"{c:>12}" for c in cols))
    for r in results:
        print(" | ".join(f"{r[c]!s:>12}" for c in cols))


if __name__ == "__main__":
    main()
