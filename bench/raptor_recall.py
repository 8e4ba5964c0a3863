"""Collapsed-tree retrieval (RAPTOR) beside leaf-only retrieval, at the same token budget, on the gold
questions whose paper has a summary tree; and the tree build timings recorded in the index.

    python bench/raptor_recall.py --dataset ../shared/eval/dev.jsonl --home DIR [--budget 2000] [--json]

Both modes search the whole index and fill the same token budget best first (RAPTOR's collapsed
tree): `leaf` = passages only (the baseline), `collapsed` = every level, `summaries` = levels >= 1.
Per mode:
- paper: the context holds something of the gold paper;
- evidence: a leaf passage in the context holds the verbatim evidence (both strings for full credit
  on synthesis questions; `evidence_any` = at least one);
- answer_cov: the share of the gold answer's content words that appear in the context text; a
  summary can carry an answer in other words than the evidence, which verbatim matching cannot see.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from foundation.config import load_settings  # noqa: E402
from eval.metrics import evidence_hit, normalize_answer  # noqa: E402
from indexes.raptor import TreeStore, collapsed_search  # noqa: E402
from indexes.store import Store  # noqa: E402

MODES = {"leaf": [0], "collapsed": None, "summaries": list(range(1, 10))}
STOP = set("of to in on for and or is are was were be by with as at from that this it its which what how".split())


def answer_coverage(answer: str, context: str) -> float:
    words = {w for w in normalize_answer(answer).split() if w not in STOP}
    if not words:
        return 0.0
    ctx = set(normalize_answer(context).split())
    return len(words & ctx) / len(words)


def evaluate(a: Assistant, rows: list[dict], mode: str, budget: int) -> list[dict]:
    out = []
    for row in rows:
        t0 = time.perf_counter()
        ranked = collapsed_search(a.library, row["question"], 200, None, levels=MODES[mode], budget=budget)
        ms = 1000 * (time.perf_counter() - t0)
        chunks = a.library.store.chunks([cid for cid, _ in ranked])
        ctx = [chunks[cid] for cid, _ in ranked if cid in chunks]
        leaves = [c.text for c in ctx if c.level == 0]
        found = [any(evidence_hit(t, ev) for t in leaves) for ev in row["evidence"]]
        out.append({"id": row["id"], "kind": row["kind"], "mode": mode,
                    "paper": any(c.arxiv_id == row["arxiv_id"] for c in ctx),
                    "evidence": all(found), "evidence_any": any(found),
                    "answer_cov": answer_coverage(row["answer"], " ".join(c.text for c in ctx)),
                    "tokens": sum(c.n_tokens for c in ctx), "summaries": sum(c.level > 0 for c in ctx),
                    "items": len(ctx), "ms": ms})
    return out


def table(results: list[dict]) -> list[dict]:
    rows = []
    for mode in MODES:
        for kind in ("all", "synthesis", "other"):
            sel = [r for r in results if r["mode"] == mode and (kind == "all" or (r["kind"] == "synthesis") == (kind == "synthesis"))]
            if not sel:
                continue
            n = len(sel)
            rows.append({"mode": mode, "questions": kind, "n": n,
                         **{m: round(sum(r[m] for r in sel) / n, 3) for m in ("paper", "evidence", "evidence_any", "answer_cov")},
                         "items": round(sum(r["items"] for r in sel) / n, 1),
                         "summary_items": round(sum(r["summaries"] for r in sel) / n, 1),
                         "tokens": round(sum(r["tokens"] for r in sel) / n), "ms": round(sum(r["ms"] for r in sel) / n, 1)})
    return rows


def build_timings(index_dir: Path) -> dict:
    path = index_dir / "raptor.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(str(path))
    trees = db.execute("SELECT arxiv_id, n_summaries, depth FROM trees").fetchall()
    runs = [json.loads(r[0]) for r in db.execute("SELECT report FROM runs ORDER BY started")]
    per_paper = {}
    for run in runs:
        per_paper.update(run.get("paper_seconds", {}))
    leaves = {}
    lib = sqlite3.connect(str(index_dir / "library.sqlite"))
    for aid, n in lib.execute("SELECT arxiv_id, COUNT(*) FROM chunks WHERE level=0 GROUP BY arxiv_id"):
        leaves[aid] = n
    summaries = sum(r.get("summaries", 0) for r in runs)
    seconds = sum(r.get("seconds", 0) for r in runs)
    return {"papers": {aid: {"leaves": leaves.get(aid), "summaries": n, "depth": d, "seconds": per_paper.get(aid)}
                       for aid, n, d in trees},
            "summaries": summaries, "seconds": round(seconds, 1),
            "summaries_per_min": round(60 * summaries / seconds, 2) if seconds else None,
            "retries": sum(r.get("retries", 0) for r in runs), "fallbacks": sum(r.get("fallbacks", 0) for r in runs)}


def transplant(a: Assistant, source: Path) -> list[str]:
    """Copy finished paper trees from another index of the same papers (same settings, so same leaf ids)
    into this one through TreeStore: summary chunks into the store and dense index (vectors from the source's
    raptor.sqlite), layer plans, trees and build runs. Papers whose leaves differ are skipped. Topics are not copied."""
    src_store = Store(source / "index" / "library.sqlite")
    src = sqlite3.connect(str(source / "index" / "raptor.sqlite"))
    trees = TreeStore(a.library)
    moved = []
    try:
        for aid, leaf_hash, root_id, _depth, n_summaries, seconds, _built in src.execute("SELECT * FROM trees").fetchall():
            mine = [c.id for c in a.library.store.chunks_of(aid, 0)]
            if not mine or mine != [c.id for c in src_store.chunks_of(aid, 0)]:
                continue
            saved = {i: (kind, vector, note) for i, kind, vector, note in
                     src.execute("SELECT id, kind, vector, note FROM nodes WHERE arxiv_id=?", (aid,))}
            nodes = sorted((c for c in src_store.chunks_of(aid, None) if c.level > 0), key=lambda c: c.level)
            for node in nodes:
                kind, vector, note = saved[node.id]
                trees.add_node(node, np.frombuffer(vector, dtype=np.float32), kind, note)
            for level, input_hash, clusters in src.execute(
                    "SELECT level, input_hash, clusters FROM plans WHERE arxiv_id=?", (aid,)):
                trees.save_plan(aid, level, input_hash, json.loads(clusters))
            trees.save_tree(aid, leaf_hash, a.library.store.chunks([root_id])[root_id], n_summaries, seconds)
            moved.append(aid)
        for _started, seconds, summaries, llm_seconds, papers, report in src.execute("SELECT * FROM runs"):
            trees.record_run(seconds, summaries, llm_seconds, papers, json.loads(report))
    finally:
        trees.close()
        src.close()
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--all-papers", action="store_true", help="Also questions whose paper has no tree")
    parser.add_argument("--trees-from", type=Path, help="Copy finished paper trees from this home first (same papers)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    a = Assistant(load_settings(home=args.home))
    if args.trees_from:
        print(f"copied trees of {transplant(a, args.trees_from)}", file=sys.stderr)
    trees = TreeStore(a.library)
    with_tree = set(trees.tree_papers())
    trees.close()
    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("arxiv_id") and (args.all_papers or r["arxiv_id"] in with_tree)]
    a.search("warm up", k=1)
    results = [r for mode in MODES for r in evaluate(a, rows, mode, args.budget)]
    summary = {"budget": args.budget, "papers_with_tree": sorted(with_tree), "table": table(results),
               "build": build_timings(a.settings.index_dir), "per_question": results}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{len(rows)} questions on {len(with_tree)} papers with trees; budget {args.budget} tokens; baseline = leaf")
    cols = ["mode", "questions", "n", "paper", "evidence", "evidence_any", "answer_cov", "items", "summary_items", "tokens", "ms"]
    print(" | ".join(f"{c:>13}" for c in cols))
    for r in summary["table"]:
        print(" | ".join(f"{r[c]!s:>13}" for c in cols))
    print(json.dumps(summary["build"], indent=1))


if __name__ == "__main__":
    main()
