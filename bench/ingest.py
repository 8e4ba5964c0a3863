"""Time a full ingest of a mirror folder, and the pipeline's embedding throughput beside raw
SentenceTransformer.encode on the same chunks (the baseline), in the same process.

    python bench/ingest.py [--mirror ../shared/papers] [--home DIR] [--sample 1024]
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
from assistant.core.config import Settings  # noqa: E402
from assistant.core.types import PaperStatus, ProgressEvent  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "papers")
    parser.add_argument("--home", type=Path, help="Build the index here (default: a temporary folder, deleted)")
    parser.add_argument("--sample", type=int, default=1024, help="Chunks encoded raw for the baseline")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    ids = [m["arxiv_id"] for m in json.loads((args.mirror / "manifest.json").read_text())]
    assistant = Assistant(Settings(home=home, mirror=args.mirror, offline=True))
    embedder = assistant.embedder
    embedder.embed(["warm up the model"])

    embed_seconds = 0.0
    embedded = 0
    last = [time.perf_counter()]
    build_started: dict[str, float] = {}  # secondary index name -> when its sync began

    def progress(event: ProgressEvent) -> None:
        nonlocal embed_seconds, embedded
        now = time.perf_counter()
        if event.stage == "embed":
            embed_seconds += now - last[0]
            embedded = embedded + 1
        elif event.stage == "build":
            build_started.setdefault(event.message.split()[0], now)
        last[0] = now

    start = time.perf_counter()
    results = assistant.ingest(ids, progress=progress)
    total = time.perf_counter() - start
    ok = [r for r in results if r.status == PaperStatus.ok]
    chunks = assistant.library.store.count_chunks()
    print(f"ingest: {len(ok)}/{len(ids)} papers ok, {chunks} chunks in {total:.1f} s "
          f"({chunks / total:.1f} chunks/s end to end)")
    marks = sorted(build_started.items(), key=lambda kv: kv[1]) + [("end", start + total)]
    if len(marks) > 1:
        print(f"  dense part (fetch, parse, chunk, embed, chromadb): {marks[0][1] - start:.1f} s")
        for (name, began), (_, ended) in zip(marks, marks[1:]):
            print(f"  {name} index over all chunks: {ended - began:.1f} s")
    for r in results:
        if r.status != PaperStatus.ok:
            print(f"  failed {r.arxiv_id}: {r.reason}")

    sample = [c.text for _, c in zip(range(args.sample), assistant.library.store.iter_chunks())]
    t0 = time.perf_counter()
    embedder.model.encode(sample, batch_size=embedder.batch_size, normalize_embeddings=True, show_progress_bar=False)
    raw = len(sample) / (time.perf_counter() - t0)
    pipeline = chunks / total
    print(f"raw SentenceTransformer.encode: {raw:.1f} chunks/s on {len(sample)} chunks (baseline)")
    print(f"pipeline end to end (fetch+parse+chunk+embed+index): {pipeline:.1f} chunks/s = {pipeline / raw:.2f}x raw encode")
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
