"""Retrieval recall on a gold set: paper-level and evidence-level recall@1/5/10 and MRR, per mode side by side.

    python bench/recall.py --dataset ../shared/eval/dev.jsonl [--mode dense --mode hybrid] [--home DIR] [--json]

An evidence hit is a retrieved chunk that contains a gold evidence string after whitespace normalisation
(with the parser's text normalisation applied to the evidence too, since chunks are cleaned text).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from assistant.config import load_settings  # noqa: E402

KS = (1, 5, 10)


def squash(text: str) -> str:
    return " ".join(text.split())


def normalizer():
    try:
        from ingest.parse import normalize_text
    except ImportError:
        return squash
    return lambda s: squash(normalize_text(s))


def evaluate(assistant: Assistant, rows: list[dict], mode: str, k_max: int = 10) -> dict:
    norm = normalizer()
    paper_hits = {k: 0 for k in KS}
    ev_hits = {k: 0 for k in KS}
    rr_ev, rr_paper, latencies = [], [], []
    for row in rows:
        start = time.perf_counter()
        hits = assistant.search(row["question"], k=k_max, mode=mode)
        latencies.append(time.perf_counter() - start)
        texts = [squash(h.chunk.text) for h in hits]
        evidence = [norm(e) for e in row["evidence"]]
        first_paper = next((i for i, h in enumerate(hits) if h.chunk.arxiv_id == row["arxiv_id"]), None)
        first_ev = next((i for i, t in enumerate(texts) if any(e in t for e in evidence)), None)
        for k in KS:
            paper_hits[k] += first_paper is not None and first_paper < k
            ev_hits[k] += first_ev is not None and first_ev < k
        rr_paper.append(0.0 if first_paper is None else 1.0 / (first_paper + 1))
        rr_ev.append(0.0 if first_ev is None else 1.0 / (first_ev + 1))
    n = len(rows)
    latencies.sort()
    return {
        "mode": mode, "questions": n,
        **{f"paper@{k}": round(paper_hits[k] / n, 3) for k in KS},
        **{f"evidence@{k}": round(ev_hits[k] / n, 3) for k in KS},
        "paper_mrr": round(sum(rr_paper) / n, 3), "evidence_mrr": round(sum(rr_ev) / n, 3),
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
