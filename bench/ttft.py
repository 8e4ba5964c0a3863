"""Time to first token and total time of the default answer path, beside the old full-passage prompt.

    python bench/ttft.py --home DIR --llm-url URL --llm-model NAME [--dataset ../shared/eval/dev.jsonl] [--n 8]

For each answerable dev question, in the same process against the same server:
- baseline: the passages prompt the answer path used before (top_k passages, ~1,800 tokens), streamed,
  time to first token only (its total would include a free-form answer of any length);
- quotes: the default path (engine/single_shot.py: evidence selection -> the model names the quotes that
  answer, each shown as soon as its number is written), time to first token, the model's whole reply and
  total, as a user sees them.
Each prompt runs twice: cold (a new prompt for the server) and warm (the same prompt again: the prefix
cache). Prints p50s, prompt sizes in tokens and the ratio quotes/baseline.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from foundation.hardware import cpu_description  # noqa: E402
from foundation.config import load_settings  # noqa: E402
from assistant.engine.passages import answer_messages, pick_messages, quote_messages  # noqa: E402
from assistant.llm.client import OpenAICompatibleLLM  # noqa: E402


def first_token_s(llm: OpenAICompatibleLLM, messages: list[dict]) -> float:
    start = time.perf_counter()
    stream = llm.stream(messages, max_tokens=1, temperature=0.0)
    try:
        next(iter(stream), None)
    finally:
        stream.close()
    return time.perf_counter() - start


def prompt(question: str, quotes: list, settings) -> list[dict]:
    """The default path's prompt: the picks prompt (answer_style "quotes") or the written lines'."""
    build = pick_messages if settings.answer_style == "quotes" else quote_messages
    return build(question, quotes, settings)


def tokens(url: str, model: str, messages: list[dict]) -> int:
    """The prompt's length in the model's own tokens, chat template included (vLLM's /tokenize)."""
    reply = httpx.post(url.rstrip("/").removesuffix("/v1") + "/tokenize",
                       json={"model": model, "messages": messages}, timeout=60)
    reply.raise_for_status()
    return int(reply.json()["count"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--llm-url", required=True)
    ap.add_argument("--llm-model", required=True)
    ap.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    print(f"CPU: {cpu_description()} (of this process; start the server under the same ONEDNN_MAX_CPU_ISA)")
    settings = load_settings(home=args.home, offline=True, llm_base_url=args.llm_url, llm_model=args.llm_model)
    llm = OpenAICompatibleLLM(args.llm_url, args.llm_model, timeout_s=600)
    assistant = Assistant(settings, llm=llm)
    items = [json.loads(x) for x in args.dataset.read_text().splitlines() if x.strip()]
    items = [i for i in items if i.get("arxiv_id")][:args.n]
    rows = []
    for item in items:
        q = item["question"]
        hits = assistant.search(q, settings.top_k)
        base = answer_messages(q, hits, settings)
        row = {"id": item.get("id"), "baseline_tokens": tokens(args.llm_url, args.llm_model, base),
               "baseline_cold_s": first_token_s(llm, base), "baseline_warm_s": first_token_s(llm, base)}
        for run in ("cold", "warm"):
            answer = assistant.ask(q)
            row[f"quotes_first_{run}_s"] = answer.timings.get("first_token_s")
            row[f"quotes_reply_{run}_s"] = answer.timings.get("generate_s")  # the model's whole reply
            row[f"quotes_total_{run}_s"] = answer.timings.get("total_s")
            row["quotes_tokens"] = tokens(args.llm_url, args.llm_model, prompt(q, list(answer.quotes), settings)) if answer.quotes else 0
            row["abstained"] = answer.abstained
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    def p50(key: str) -> float:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else float("nan")

    summary = {k: p50(k) for k in rows[0] if k.endswith(("_s", "_tokens"))}
    summary["model"] = args.llm_model
    summary["ratio_first_token_cold"] = round(summary["quotes_first_cold_s"] / summary["baseline_cold_s"], 3)
    if args.json:
        print(json.dumps(summary))
        return
    print(f"model {args.llm_model}, {len(rows)} answerable dev questions, p50:")
    print(f"  prompt tokens: baseline {summary['baseline_tokens']:.0f}, quotes {summary['quotes_tokens']:.0f}")
    print(f"  first token, cold: baseline {summary['baseline_cold_s']:.2f} s, quotes {summary['quotes_first_cold_s']:.2f} s "
          f"(ratio {summary['ratio_first_token_cold']:.2f})")
    print(f"  first token, warm: baseline {summary['baseline_warm_s']:.2f} s, quotes {summary['quotes_first_warm_s']:.2f} s")
    print(f"  whole reply of the model (the first token streams before it): cold {summary['quotes_reply_cold_s']:.2f} s, "
          f"warm {summary['quotes_reply_warm_s']:.2f} s")
    print(f"  total (quotes path): cold {summary['quotes_total_cold_s']:.2f} s, warm {summary['quotes_total_warm_s']:.2f} s")


if __name__ == "__main__":
    main()
