"""RAPTOR summaries per minute at several concurrencies against one model server, and the projected time to
give a whole library its trees.

    python bench/raptor_rate.py --llm-url URL --llm-model NAME [--paper 2305.13245] [-c 1 -c 4] [--library HOME]

For each concurrency, in this process: a fresh temporary home ingests the same paper from the mirror (not
timed) and builds its tree (no topic level); the build's own report gives summaries, seconds and
summaries/minute. Every concurrency summarises the same clusters (the clustering is seeded), so the rates
compare; each run's prompt files start with their own first line, or the server's prefix cache would hand
the later runs the earlier runs' prefill (measured: concurrency 4 looked 3.9x faster than 1 that way).
The projection: the library's estimated summary count (every paper's, as the build's ETA counts them)
over the best rate.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from foundation.config import load_settings  # noqa: E402
from indexes.raptor.clustering import estimate_summaries  # noqa: E402
from assistant.summaries.config import TreeConfig  # noqa: E402


def fresh_prompts(folder: Path, first_line: str) -> Path:
    """The project's prompts, the summary ones starting with `first_line`: a prefix no earlier run sent."""
    shutil.copytree(load_settings().prompts_dir, folder)
    for name in ("cluster_summary", "paper_summary", "topic_summary"):
        path = folder / f"{name}.txt"
        path.write_text(f"{first_line}\n{path.read_text()}")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--llm-model", required=True)
    parser.add_argument("--paper", default="2305.13245", help="arXiv id of a paper in the mirror")
    parser.add_argument("--mirror", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "papers")
    parser.add_argument("-c", "--concurrency", type=int, action="append", help="Summaries in flight (repeatable)")
    parser.add_argument("--library", type=Path, help="Project the time to build trees for this home's papers")
    args = parser.parse_args()

    rates: dict[int, float] = {}
    for concurrency in args.concurrency or [1, 4]:
        home = Path(tempfile.mkdtemp(prefix="bench-raptor-"))
        try:
            prompts = fresh_prompts(home / "prompts", f"Summary run {uuid.uuid4().hex[:8]}.")
            a = Assistant(load_settings(home=home, mirror=args.mirror, offline=True, llm_base_url=args.llm_url,
                                        llm_model=args.llm_model, prompts_dir=prompts))
            a.ingest([args.paper])
            report = a.build_tree([args.paper], concurrency=concurrency, topics=False)
            rates[concurrency] = report.rate_per_min
            print(f"concurrency {concurrency}: {report.summaries} summaries in {report.seconds:.1f} s = "
                  f"{report.rate_per_min:.2f} summaries/min ({report.llm_calls} LLM calls, "
                  f"{report.fallbacks} fallbacks)", flush=True)
            a.close()
        finally:
            shutil.rmtree(home, ignore_errors=True)
    base = min(rates)
    if rates[base]:
        for c, rate in sorted(rates.items()):
            print(f"  concurrency {c}: {rate / rates[base]:.2f}x concurrency {base}")
    if args.library:
        lib = Assistant(load_settings(home=args.library, llm_base_url=args.llm_url, llm_model=args.llm_model))
        by_paper = defaultdict(list)
        for chunk in lib.library.store.iter_chunks(level=0):
            by_paper[chunk.arxiv_id].append(chunk)
        config = TreeConfig.from_settings(lib.settings, None)
        total = sum(estimate_summaries([c.n_tokens for c in leaves], config.input_budget, config.summary_tokens)
                    for leaves in by_paper.values())
        best_c, best = max(rates.items(), key=lambda kv: kv[1])
        print(f"library {args.library}: {len(by_paper)} papers, ~{total} summaries; at {best:.2f}/min "
              f"(concurrency {best_c}): ~{total / best:.0f} min" if best else "no rate measured")


if __name__ == "__main__":
    main()
