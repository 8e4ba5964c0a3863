"""Ingest end to end (fetch from the mirror, parse, chunk, dense, BM25, ColBERT) beside the baseline: one plain
fp32 SentenceTransformer.encode of the same chunks, in the same process, right after.

    python bench/ingest.py [--papers 8 | --all] [--mirror ../shared/papers] [--home DIR]

The target (issue 12) is ingest <= 1.0x the baseline: every stage but the one encoder pass hidden or cheap.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from foundation.hardware import cpu_description  # noqa: E402
from foundation.config import Settings  # noqa: E402
from foundation.types import PaperStatus, ProgressEvent  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "papers")
    parser.add_argument("--home", type=Path, help="Build the index here (default: a temporary folder, deleted)")
    parser.add_argument("--papers", type=int, default=8, help="Ingest the first N papers of the mirror's manifest")
    parser.add_argument("--all", action="store_true", help="Ingest every paper of the mirror (53 in ../shared/papers)")
    args = parser.parse_args()

    print(f"CPU: {cpu_description()}")
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    ids = [m["arxiv_id"] for m in json.loads((args.mirror / "manifest.json").read_text())]
    ids = ids if args.all else ids[:args.papers]
    assistant = Assistant(Settings(home=home, mirror=args.mirror, offline=True))
    embedder = assistant.embedder
    embedder.embed(["warm up the model"])  # loading the model is not ingest work: the baseline gets it free too

    stages: dict[str, float] = {}  # stage -> when it began
    first_build = [0.0]

    def progress(event: ProgressEvent) -> None:
        if event.stage == "build":
            stages.setdefault(event.message.split(":")[0], time.perf_counter())
            first_build[0] = first_build[0] or time.perf_counter()

    start = time.perf_counter()
    results = assistant.ingest(ids, progress=progress)
    total = time.perf_counter() - start
    ok = [r for r in results if r.status == PaperStatus.ok]
    texts = [c.text for c in assistant.library.store.iter_chunks(level=0)]
    print(f"ingest: {len(ok)}/{len(ids)} papers ok, {len(texts)} chunks in {total:.1f} s ({len(texts) / total:.1f} chunks/s)")
    marks = sorted(stages.items(), key=lambda kv: kv[1]) + [("end", start + total)]
    if len(marks) > 1:
        print(f"  fetch, parse, chunk, encode, chromadb: {marks[0][1] - start:.1f} s")
        for (name, began), (_, ended) in zip(marks, marks[1:]):
            print(f"  {name}: {ended - began:.1f} s")
    for r in results:
        if r.status != PaperStatus.ok:
            print(f"  failed {r.arxiv_id}: {r.reason}")

    t0 = time.perf_counter()
    embedder.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    baseline = time.perf_counter() - t0
    print(f"baseline: plain fp32 SentenceTransformer.encode of the same {len(texts)} chunks: {baseline:.1f} s "
          f"({len(texts) / baseline:.1f} chunks/s)")
    print(f"ingest end to end = {total / baseline:.2f}x the baseline encode (target <= 1.0x)")
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
