"""Retrieval recall on a gold set: paper-level and evidence-level recall@1/5/10 and MRR, per mode side by side.

    python bench/recall.py --dataset ../shared/eval/dev.jsonl [--mode dense --mode hybrid] [--home DIR] [--json]

An evidence hit is eval.metrics.evidence_hit: the passage holds the gold evidence string after whitespace
and text normalisation, or half of it where a chunk boundary cuts it (the eval suite's definition).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa
from eval.metrics import retrieval_scores  # noqa: E402
from foundation.config import load_settings  # noqa: E402

KS = (1, 5, 10)


def evaluate(assistant: Assistant, rows: list[dict], mode: str, k_max: int = 10) -> dict:
    """Paper and evidence hits per k (eval.metrics' one definition of an evidence hit); evidence@k counts a
    question as hit when any of its evidence strings is in the top k, evidence_all@k when all are."""
    per_question = []
    latencies = []
    for row in rows:
        start = time.perf_counter()
        hits = assistant.search(row["question"], k=k_max, mode=mode)
        latencies.append(time.perf_counter() - start)
        per_question.append(retrieval_scores(row["arxiv_id"], row["evidence"],
                                             [(h.chunk.arxiv_id, h.chunk.text) for h in hits]))
    n = len(rows)
    latencies.sort()

    def share(pred) -> float:
        return round(sum(1 for r in per_question if pred(r)) / n, 3)

    first = [min([r for r in s.evidence_ranks if r is not None], default=None) for s in per_question]
    return {
        "mode": mode, "questions": n,
        **{f"paper@{k}": share(lambda s, k=k: s.paper_rank is not None and s.paper_rank <= k) for k in KS},
        **{f"evidence@{k}": round(sum(1 for f in first if f is not None and f <= k) / n, 3) for k in KS},
        **{f"evidence_all@{k}": share(lambda s, k=k: s.evidence_recall(k) == 1.0) for k in KS},
        "paper_mrr": round(sum(s.paper_rr for s in per_question) / n, 3),
        "evidence_mrr": round(sum(1.0 / f if f else 0.0 for f in first) / n, 3),
        "p50_ms": round(1000 * latencies[n // 2], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--mode", action="append", help="dense | bm25 | colbert | hybrid | collapsed (repeatable)")
    parser.add_argument("--home", type=Path, help="Index home (default: settings)")
    parser.add_argument("--kind", help="Only questions of this kind (fact, mechanism, why, comparison, synthesis)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("arxiv_id") and r.get("evidence") and (not args.kind or r["kind"] == args.kind)]
    assistant = Assistant(load_settings(home=args.home))
    modes = args.mode or ["dense"]
    assistant.search("warm up", k=1, mode=modes[0])
    results = [evaluate(assistant, rows, mode) for mode in modes]
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
