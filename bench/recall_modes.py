"""Scratch bench for the retrieval modes: recall / MRR on dev.jsonl and latency, per mode.

Prints paper-level and evidence-level recall@1/5/10 and MRR, and p50/p95 search latency, for
dense, bm25, colbert and hybrid (weighted RRF). The main figure is bench/recall.py; this one is
for tuning the ColBERT / BM25 / fusion settings.

    python bench/recall_modes.py --chunks /tmp/colbert_work/chunks.jsonl --work /tmp/colbert_work/bench
    python bench/recall_modes.py --store ~/.local/share/paper-assistant/index/store.sqlite ...

Chunks come from a JSONL of Chunk records or from the Store. Dense is exact cosine over MiniLM
vectors (cached as dense.npy next to the chunks file when given), the same ranking the dense index makes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.fusion import rrf  # noqa: E402
from assistant.types import Chunk  # noqa: E402

KS = (1, 5, 10)
Ranking = list[tuple[str, float]]


def norm(s: str) -> str:
    return " ".join(s.split())


def evidence_hit(evidence: str, chunk_text: str) -> bool:
    """README rule: whitespace-normalised substring; or, at a chunk boundary, an overlap of half the evidence."""
    if evidence in chunk_text:
        return True
    half = max(20, len(evidence) // 2)
    for n in range(len(evidence) - 1, half - 1, -1):
        if chunk_text.endswith(evidence[:n]) or chunk_text.startswith(evidence[-n:]):
            return True
    return False


def load_questions(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("arxiv_id")]


def score(questions: list[dict], rankings: dict[str, Ranking], chunks: dict[str, Chunk]) -> dict[str, float]:
    """Mean metrics over answerable questions. ev@k = share of a question's evidence strings found in top k."""
    out: dict[str, list[float]] = {}
    texts = {cid: norm(c.text) for cid, c in chunks.items()}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    for q in questions:
        ranked = [cid for cid, _ in rankings[q["id"]]]
        evid = [norm(e) for e in q["evidence"]]
        paper_ranks = [i for i, cid in enumerate(ranked) if chunks[cid].arxiv_id == q["arxiv_id"]]
        found_at: list[int | None] = []
        for e in evid:
            pos = next((i for i, cid in enumerate(ranked) if evidence_hit(e, texts[cid])), None)
            found_at.append(pos)
        for k in KS:
            add(f"paper@{k}", float(bool(paper_ranks) and paper_ranks[0] < k))
            add(f"ev@{k}", sum(1 for p in found_at if p is not None and p < k) / len(evid))
            add(f"evall@{k}", float(all(p is not None and p < k for p in found_at)))
        add("paperMRR", 1.0 / (paper_ranks[0] + 1) if paper_ranks else 0.0)
        first_ev = min([p for p in found_at if p is not None], default=None)
        add("evMRR", 1.0 / (first_ev + 1) if first_ev is not None else 0.0)
    return {k: statistics.fmean(v) for k, v in out.items()}


CPU_TIMES: dict[str, list[float]] = {}


def run_mode(search: Callable[[str], Ranking], questions: list[dict], name: str = "") -> tuple[dict[str, Ranking], list[float]]:
    """Rankings per question and wall-clock ms per search (CPU ms go to CPU_TIMES[name]: on a busy
    shared machine they are the steadier figure)."""
    rankings, times, cpu = {}, [], []
    search(questions[0]["question"])  # warm-up
    for q in questions:
        t0, c0 = time.perf_counter(), time.process_time()
        rankings[q["id"]] = search(q["question"])
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    if name:
        CPU_TIMES[name] = cpu
    return rankings, times


def pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def print_table(rows: dict[str, dict[str, float]], lat: dict[str, list[float]]) -> None:
    cols = ["paper@1", "paper@5", "paper@10", "paperMRR", "ev@1", "ev@5", "ev@10", "evMRR", "evall@10"]
    print(f"{'mode':<28}" + "".join(f"{c:>9}" for c in cols) + f"{'p50 ms':>9}{'p95 ms':>9}{'cpu p50':>9}{'cpu p95':>9}")
    for name, m in rows.items():
        t, c = lat.get(name), CPU_TIMES.get(name)
        lat_s = f"{pct(t, 50):9.1f}{pct(t, 95):9.1f}" if t else " " * 18
        lat_s += f"{pct(c, 50):9.1f}{pct(c, 95):9.1f}" if c else ""
        print(f"{name:<28}" + "".join(f"{m[c]:9.3f}" for c in cols) + lat_s)


class ExactDense:
    """Exact cosine over MiniLM chunk vectors (what the dense index ranks by)."""

    def __init__(self, chunks: list[Chunk], cache: Path | None):
        from indexes.embedder import SentenceTransformerEmbedder

        self.ids = [c.id for c in chunks]
        self.embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        if cache is not None and cache.exists():
            self.vectors = np.load(cache)
        else:
            self.vectors = self.embedder.embed([c.text for c in chunks])
            if cache is not None:
                np.save(cache, self.vectors)

    def search(self, query: str, k: int) -> Ranking:
        q = self.embedder.embed([query])[0]
        s = self.vectors @ q
        top = np.argsort(-s)[:k]
        return [(self.ids[i], float(s[i])) for i in top]


def load_chunks(args) -> list[Chunk]:
    if args.store:
        from indexes.store import Store

        return list(Store(Path(args.store)).iter_chunks())
    return [Chunk.model_validate_json(line) for line in Path(args.chunks).read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="/tmp/colbert_work/chunks.jsonl")
    parser.add_argument("--store", default=None)
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "eval" / "dev.jsonl"))
    parser.add_argument("--work", default="/tmp/colbert_work/bench", help="Where the indexes are built/kept")
    parser.add_argument("--modes", default="dense,bm25,colbert,hybrid")
    parser.add_argument("--colbert-path", default=None, help="An existing ColBERT index folder to search")
    parser.add_argument("--save-rankings", default=None, help="Write every mode's rankings (JSON) here")
    parser.add_argument("--load-rankings", action="append", default=[],
                        help="Rankings saved by --save-rankings: those modes are not searched again")
    parser.add_argument("--depth", type=int, default=100, help="Depth of each ranking fed to fusion")
    parser.add_argument("--weights", default="dense=1,bm25=1,colbert=1")
    parser.add_argument("--rrf-k", type=int, default=60)
    parser.add_argument("--tune", action="store_true", help="Grid-search fusion weights and k on the dataset")
    args = parser.parse_args()

    chunks = load_chunks(args)
    by_id = {c.id: c for c in chunks}
    questions = load_questions(Path(args.dataset))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    modes = args.modes.split(",")
    rankings: dict[str, dict[str, Ranking]] = {}
    latency: dict[str, list[float]] = {}
    results: dict[str, dict[str, float]] = {}

    for saved in args.load_rankings:
        rankings.update(json.loads(Path(saved).read_text()))
    need = lambda m: (m in modes or "hybrid" in modes) and m not in rankings  # noqa: E731
    if need("dense"):
        cache = Path(args.chunks).with_name("dense.npy") if not args.store else work / "dense.npy"
        dense = ExactDense(chunks, cache)
        rankings["dense"], latency["dense"] = run_mode(lambda q: dense.search(q, args.depth), questions, "dense")
    if need("bm25"):
        from indexes.bm25 import BM25Index

        bm25 = BM25Index(work / "bm25")
        if len(bm25) != len(chunks):
            t0 = time.perf_counter()
            bm25.clear()
            bm25.add(chunks)
            print(f"bm25 build: {time.perf_counter() - t0:.1f} s for {len(chunks)} chunks")
        rankings["bm25"], latency["bm25"] = run_mode(lambda q: bm25.search(q, args.depth), questions, "bm25")
    if need("colbert"):
        from indexes.colbert import ColBERTIndex

        colbert = ColBERTIndex(Path(args.colbert_path) if args.colbert_path else work / "colbert")
        if len(colbert) != len(chunks):
            t0 = time.perf_counter()
            colbert.rebuild(chunks)
            print(f"colbert build: {time.perf_counter() - t0:.1f} s for {len(chunks)} chunks")
        rankings["colbert"], latency["colbert"] = run_mode(lambda q: colbert.search(q, args.depth), questions, "colbert")

    if args.save_rankings:
        Path(args.save_rankings).write_text(json.dumps(rankings))
    for name in ("dense", "bm25", "colbert"):
        if name in rankings and name in modes:
            results[name] = score(questions, {q: r[:10] for q, r in rankings[name].items()}, by_id)

    if "hybrid" in modes:
        weights = {kv.split("=")[0]: float(kv.split("=")[1]) for kv in args.weights.split(",")}
        fused = {q["id"]: rrf({m: rankings[m][q["id"]] for m in weights}, weights, k=args.rrf_k, limit=10)
                 for q in questions}
        results[f"hybrid {args.weights} k={args.rrf_k}"] = score(questions, fused, by_id)
        if args.tune:
            grid = []
            for wd in (0.0, 0.25, 0.5, 0.75, 1.0):
                for wb in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5):
                    for wc in (0.5, 1.0, 1.5, 2.0):
                        for k in (10, 30, 60):
                            w = {"dense": wd, "bm25": wb, "colbert": wc}
                            f = {q["id"]: rrf({m: rankings[m][q["id"]] for m in w}, w, k=k, limit=10) for q in questions}
                            m = score(questions, f, by_id)
                            grid.append((m["ev@10"], m["ev@5"], m["evMRR"], wd, wb, wc, k))
            grid.sort(reverse=True)
            print("top fusion settings (ev@10, ev@5, evMRR, dense, bm25, colbert, k):")
            for row in grid[:15]:
                print("  " + "  ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in row))

    print(f"{len(questions)} answerable questions, {len(chunks)} chunks")
    print_table(results, latency)


if __name__ == "__main__":
    main()
