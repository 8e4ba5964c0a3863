"""How search grows with the library: the index copied to 4x and 16x its chunks (new ids, the same texts and
vectors with a little noise), query p50/p95 and memory per index at each size, against the 1x copy built the
same way in the same run.

    python bench/scale.py --home DIR [--factor 1 --factor 4 --factor 16] [--dataset ../shared/eval/dev.jsonl]

Each size is built and searched in a child process of its own, so its resident memory is that index's alone
(the process's RSS after loading minus before). Queries are the dataset's questions, encoded once here: the
encode (one MiniLM forward pass, the same at every size) is printed apart. ColBERT is timed at 1x on the
library's own index only; see the README's scaling table for why it is not rebuilt at 4x/16x here.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

K = 30  # what hybrid asks each retriever for (engine/retrieve.py: max(3k, 30))
NOISE = 0.01  # copies are near duplicates, not exact ones: HNSW with exact ties is not what a real library holds


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def ms(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return round(float(np.percentile(arr, 50)), 2), round(float(np.percentile(arr, 95)), 2)


def child(home: Path, factor: int, queries_file: Path) -> dict:
    """Build the factor-x copy in a temp folder, then search it; returns the row as a dict."""
    from foundation.config import load_settings
    from indexes.bm25 import BM25Index
    from indexes.dense import DenseIndex
    from indexes.library import Library

    data = json.loads(queries_file.read_text())
    questions, vectors = data["questions"], np.asarray(data["vectors"], dtype=np.float32)
    library = Library(load_settings(home=home), embedder=None, extra_indexes={})
    chunks = list(library.store.iter_searchable())
    source = library.dense.vectors([c.id for c in chunks])
    chunks = [c for c in chunks if c.id in source]
    base = np.stack([source[c.id] for c in chunks])
    rng = np.random.default_rng(factor)
    with tempfile.TemporaryDirectory(prefix=f"scale{factor}x-") as tmp:
        root = Path(tmp)
        before = rss_mb()
        dense = DenseIndex(None, path=root / "chroma")
        bm25 = BM25Index(root / "bm25")
        start = time.perf_counter()
        for copy in range(factor):
            # copy 0 keeps the real ids, so the 1x index is the library's own
            made = [c if copy == 0 else c.model_copy(update={"id": f"{c.id}~{copy}"}) for c in chunks]
            vecs = base if copy == 0 else base + rng.normal(0, NOISE, base.shape).astype(np.float32)
            dense.add_embedded(made, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
            bm25.add(made)
        build_s = time.perf_counter() - start
        del dense, bm25  # measure what a fresh process holds after opening the indexes and searching
        import gc

        gc.collect()
        opened = rss_mb()
        dense, bm25 = DenseIndex(None, path=root / "chroma"), BM25Index(root / "bm25")
        timings: dict[str, list[float]] = {"dense": [], "bm25": []}
        for rep in range(2):  # the first pass loads the HNSW graph and BM25 arrays; the second is timed too
            for question, vec in zip(questions, vectors):
                t = time.perf_counter()
                dense.search_vector(vec, K)
                if rep:
                    timings["dense"].append(time.perf_counter() - t)
                t = time.perf_counter()
                bm25.search(question, K)
                if rep:
                    timings["bm25"].append(time.perf_counter() - t)
        row = {"factor": factor, "chunks": len(chunks) * factor, "build_s": round(build_s, 1),
               "disk_mb": round(disk_mb(root), 1), "rss_mb": round(rss_mb() - min(before, opened), 1)}
        for name, samples in timings.items():
            row[f"{name}_p50_ms"], row[f"{name}_p95_ms"] = ms(samples)
        return row


def colbert_row(home: Path, questions: list[str]) -> dict:
    from assistant.api import Assistant
    from foundation.config import load_settings

    a = Assistant(load_settings(home=home))
    colbert = a.library.extra_indexes.get("colbert")
    if colbert is None:
        return {}
    before = rss_mb()
    for q in questions:
        a.embedder.encode_query(q)  # the shared encode is timed apart
    colbert.search(questions[0], K)
    samples = []
    for q in questions:
        t = time.perf_counter()
        colbert.search(q, K)
        samples.append(time.perf_counter() - t)
    p50, p95 = ms(samples)
    encode = []
    for q in questions:
        a.embedder.forget_queries()
        t = time.perf_counter()
        a.embedder.encode_query(q)
        encode.append(time.perf_counter() - t)
    return {"colbert_p50_ms": p50, "colbert_p95_ms": p95, "colbert_rss_mb": round(rss_mb() - before, 1),
            "colbert_disk_mb": round(disk_mb(a.settings.index_dir / "colbert"), 1), "encode_p50_ms": ms(encode)[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--factor", type=int, action="append")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.home, args.factor[0], args.child)))
        return

    from foundation.config import load_settings
    from indexes.embedder import embedder_for

    questions = [json.loads(line)["question"] for line in args.dataset.read_text().splitlines() if line.strip()]
    settings = load_settings(home=args.home)
    vectors = embedder_for(settings).embed(questions)
    rows = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"questions": questions, "vectors": vectors.tolist()}, f)
    try:
        for factor in sorted(set(args.factor or [1, 4, 16]) | {1}):
            out = subprocess.run([sys.executable, __file__, "--home", str(args.home), "--factor", str(factor),
                                  "--child", f.name], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        os.unlink(f.name)
    extra = colbert_row(args.home, questions)
    base = rows[0]
    print(f"\n{len(questions)} queries, top {K}; query encode p50 {extra.get('encode_p50_ms', '-')} ms at every size")
    print(f"{'chunks':>8} | {'dense p50/p95 ms':>17} | {'bm25 p50/p95 ms':>16} | {'RSS MB':>7} | {'disk MB':>8} | "
          f"{'build s':>7} | dense p50 vs 1x | bm25 p50 vs 1x")
    for r in rows:
        print(f"{r['chunks']:>8} | {r['dense_p50_ms']:>7} / {r['dense_p95_ms']:<7} | {r['bm25_p50_ms']:>6} / "
              f"{r['bm25_p95_ms']:<7} | {r['rss_mb']:>7} | {r['disk_mb']:>8} | {r['build_s']:>7} | "
              f"{r['dense_p50_ms'] / base['dense_p50_ms']:>14.2f}x | {r['bm25_p50_ms'] / base['bm25_p50_ms']:>13.2f}x")
    if extra:
        print(f"ColBERT at 1x ({base['chunks']} chunks): p50 {extra['colbert_p50_ms']} / p95 {extra['colbert_p95_ms']} ms, "
              f"RSS {extra['colbert_rss_mb']} MB, disk {extra['colbert_disk_mb']} MB")


if __name__ == "__main__":
    main()
