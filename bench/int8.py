"""The managed server's int8 weights (W8A8) against bfloat16: prefill and decode speed, same process, same prompts.

    python bench/int8.py [--model-path .models/qwen2.5-coder-1.5b-instruct] [--tokens 600] [--n 4]

Starts the managed server twice on a temporary home, first with vllm_int8 "off" (the baseline), then "on",
and sends each the same prompts: prefill with max_tokens 1 (each prompt starts with a fresh random number, so
the prefix cache cannot serve it), then decode of 64 tokens after a short prompt. Prints tok/s per weights and
the ratio int8/bf16. Whether the answers hold up is eval/'s question (README, "Answering").
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foundation.config import Settings  # noqa: E402
from assistant.llm.client import OpenAICompatibleLLM  # noqa: E402
from assistant.llm.server import VLLMServer  # noqa: E402

DECODE_TOKENS = 64


def texts(n: int, words: int, seed: int = 0) -> list[str]:
    """Stretches of the README (real technical prose, numbers and names), each with a random first line."""
    corpus = (ROOT / "README.md").read_text().split()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randrange(0, max(1, len(corpus) - words))
        out.append(" ".join(corpus[start:start + words]))
    return out


def timed(llm: OpenAICompatibleLLM, text: str, max_tokens: int) -> tuple[float, int, int]:
    """(seconds, prompt tokens, completion tokens) of one request."""
    start = time.perf_counter()
    reply = llm.chat([{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0.0,
                     extra_body={"ignore_eos": True})
    return time.perf_counter() - start, reply.prompt_tokens, reply.completion_tokens


def measure(settings: Settings, prompts: list[str]) -> dict[str, float]:
    server = VLLMServer(settings)
    start = time.perf_counter()
    url = server.ensure_running(progress=lambda msg: print(f"  {msg}", file=sys.stderr), keep=True)
    ready_s = time.perf_counter() - start
    try:
        llm = OpenAICompatibleLLM(url, settings.llm_model, timeout_s=600)
        timed(llm, "Say hello.", 4)  # first request warms the server's caches
        prefill = []
        for text in prompts:
            seconds, prompt_tokens, _ = timed(llm, f"{random.random()}\n{text}", 1)
            prefill.append((prompt_tokens / seconds, prompt_tokens))
        decode = []
        for text in prompts[:2]:
            seconds, _, completion = timed(llm, f"{random.random()}\nSummarise: {text[:200]}", DECODE_TOKENS)
            decode.append(completion / seconds)
        return {"ready_s": ready_s, "prefill_tok_s": statistics.median(p for p, _ in prefill),
                "prompt_tokens": statistics.median(t for _, t in prefill), "decode_tok_s": statistics.median(decode)}
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-path", type=Path, default=Settings().llm_model_path)
    ap.add_argument("--tokens", type=int, default=600, help="prompt length to prefill, about")
    ap.add_argument("--n", type=int, default=4, help="prompts per weights")
    ap.add_argument("--port", type=int, default=8790)
    args = ap.parse_args()
    prompts = texts(args.n, int(args.tokens * 0.7))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as home:
        for choice in ("off", "on"):
            settings = Settings(home=Path(home) / choice, llm_model=args.model_path.name,
                                llm_model_path=args.model_path, vllm_port=args.port, vllm_int8=choice,
                                server_keep_alive_s=-1)
            print(f"weights {'int8' if choice == 'on' else 'bf16'}: starting", file=sys.stderr)
            results[choice] = measure(settings, prompts)
    bf16, w8 = results["off"], results["on"]
    print(f"model {args.model_path.name}, {args.n} prompts of ~{bf16['prompt_tokens']:.0f} tokens, median:")
    for key, label in (("prefill_tok_s", "prefill tok/s"), ("decode_tok_s", "decode tok/s"), ("ready_s", "ready s")):
        print(f"  {label}: bf16 {bf16[key]:.1f}, int8 {w8[key]:.1f} (ratio {w8[key] / bf16[key]:.2f})")
    print(f"  {args.tokens} tokens' prefill: bf16 {args.tokens / bf16['prefill_tok_s']:.2f} s, "
          f"int8 {args.tokens / w8['prefill_tok_s']:.2f} s")


if __name__ == "__main__":
    main()
