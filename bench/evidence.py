"""Evidence selection on a gold set: of the gold evidence strings the retrieved passages hold, how many the
selected quotes keep, and how early (quotes are numbered best first; the extractive answer shows the first two).

    python bench/evidence.py [--dataset ../shared/eval/dev.jsonl] [--home DIR] [--mode hybrid]

Each EvidenceWeights variant runs on the same retrieved passages in the same process; no model is called.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from foundation.config import load_settings  # noqa: E402
from assistant.engine.evidence import EvidenceSelector, EvidenceWeights  # noqa: E402
from eval.matching import evidence_hit  # noqa: E402

VARIANTS = {
    "default": EvidenceWeights(),
    "whole passages": None,  # the top passages themselves: the ceiling quotes can reach
    "+ lexical idf": replace(EvidenceWeights(), lexical=1.0),
    "- dense cosine": replace(EvidenceWeights(), dense=0.0),
    "dense 0.5": replace(EvidenceWeights(), dense=0.5),
    "no figure term": replace(EvidenceWeights(), figure=0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--home", type=Path)
    parser.add_argument("--mode", default="hybrid")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("arxiv_id") and r.get("evidence")]
    a = Assistant(load_settings(home=args.home))
    s = a.settings
    bm25 = a.library.extra_indexes.get("bm25")
    retrieved = [(r, a.search(r["question"], k=s.top_k, mode=args.mode)) for r in rows]
    in_passages = [(r, hits, [ev for ev in r["evidence"] if any(evidence_hit(h.chunk.text, ev) for h in hits)])
                   for r, hits in retrieved]
    n_ev = sum(len(evs) for _, _, evs in in_passages)
    print(f"{len(rows)} questions, mode {args.mode}, top {s.top_k} passages, {s.quotes_budget_tokens}-token quotes; "
          f"{n_ev} of {sum(len(r['evidence']) for r in rows)} evidence strings are in the passages")
    print(f"{'variant':<16} {'evidence kept':>14} {'questions kept':>15} {'in quote 1':>11} {'in quotes 1-2':>14}")
    for name, weights in VARIANTS.items():
        kept = questions = first = first_two = 0
        selector = None if weights is None else EvidenceSelector(a.embedder.embed_tokens, getattr(bm25, "idf", None),
                                                                 weights=weights)
        for r, hits, evs in in_passages:
            if selector is None:
                texts = [h.chunk.text for h in hits]
            else:
                texts = [q.text for q in selector.select(r["question"], hits, s.quotes_budget_tokens)]
            ranks = [next((i for i, t in enumerate(texts, 1) if evidence_hit(t, ev)), None) for ev in evs]
            kept += sum(1 for x in ranks if x)
            found = [x for x in ranks if x]
            questions += bool(found)
            first += bool(found) and min(found) == 1
            first_two += bool(found) and min(found) <= 2
        with_ev = sum(1 for _, _, evs in in_passages if evs)
        print(f"{name:<16} {kept / max(n_ev, 1):>14.3f} {questions / max(with_ev, 1):>15.3f} "
              f"{first / max(with_ev, 1):>11.3f} {first_two / max(with_ev, 1):>14.3f}")


if __name__ == "__main__":
    main()
