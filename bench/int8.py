"""The managed server's weights and dtypes against each other: prefill and decode speed and memory, one process.

    python bench/int8.py [--model-path .models/qwen2.5-coder-1.5b-instruct] [--tokens 600] [--n 4]
                         [--configs bf16,int8]          # the first named is the baseline
    ONEDNN_MAX_CPU_ISA=AVX2 python bench/int8.py --configs fp32,int8-fp32   # an AVX-512 machine as AVX2

A config is WEIGHTS[-DTYPE]: weights bf16/fp32 (the model as shipped, served in that dtype) or int8 (its W8A8
twin, activations in DTYPE, bfloat16 unless -fp32). Starts the managed server once per config on a
temporary home and sends each the same prompts: prefill with max_tokens 1 (each prompt starts with a fresh
random number, so the prefix cache cannot serve it), then decode of 64 tokens after a short prompt. Prints
the CPU and the flags that decide the path, tok/s, the server's memory (RSS and PSS of all its processes,
KV cache included), and each config's ratio to the first. Whether answers hold up is eval/'s question.
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
from foundation.hardware import cpu_description  # noqa: E402
from assistant.llm import procs  # noqa: E402
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
        rss, pss = procs.memory(procs.family(server.pid())) if server.pid() else (0, 0)
        return {"ready_s": ready_s, "rss_gb": rss / 1e9, "pss_gb": pss / 1e9, "prefill_tok_s": statistics.median(p for p, _ in prefill),
                "prompt_tokens": statistics.median(t for _, t in prefill), "decode_tok_s": statistics.median(decode)}
    finally:
        server.stop()


def settings_for(config: str, home: Path, args: argparse.Namespace) -> Settings:
    weights, _, dtype = config.partition("-")
    dtypes = {"bf16": "bfloat16", "fp32": "float32", "": "bfloat16"}
    if weights not in ("bf16", "fp32", "int8") or dtype not in dtypes:
        raise SystemExit(f"unknown config {config!r}: WEIGHTS[-DTYPE] with weights bf16/fp32/int8, dtype bf16/fp32")
    return Settings(home=home / config, llm_model=args.model_path.name, llm_model_path=args.model_path,
                    vllm_port=args.port, vllm_int8="on" if weights == "int8" else "off",
                    vllm_dtype=dtypes[dtype] if weights == "int8" else dtypes[weights], server_keep_alive_s=-1,
                    **({"vllm_kv_cache_gib": args.kv_gib} if args.kv_gib else {}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-path", type=Path, default=Settings().llm_model_path)
    ap.add_argument("--tokens", type=int, default=600, help="prompt length to prefill, about")
    ap.add_argument("--n", type=int, default=4, help="prompts per config")
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--configs", default="bf16,int8", help="comma-separated; the first is the baseline")
    ap.add_argument("--kv-gib", type=int, default=0, help="KV cache GiB (default: the settings' default)")
    args = ap.parse_args()
    configs = args.configs.split(",")
    print(f"CPU: {cpu_description()}")
    prompts = texts(args.n, int(args.tokens * 0.7))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as home:
        for config in configs:
            settings = settings_for(config, Path(home), args)
            print(f"{config}: starting", file=sys.stderr)
            results[config] = measure(settings, prompts)
            print(f"{config}: {results[config]}", file=sys.stderr)
    base = results[configs[0]]
    print(f"model {args.model_path.name}, {args.n} prompts of ~{base['prompt_tokens']:.0f} tokens, median; "
          f"ratios to {configs[0]}:")
    for config in configs:
        r = results[config]
        print(f"  {config:10s} prefill {r['prefill_tok_s']:7.1f} tok/s ({r['prefill_tok_s'] / base['prefill_tok_s']:.2f}x), "
              f"{args.tokens} tokens in {args.tokens / r['prefill_tok_s']:5.2f} s; decode {r['decode_tok_s']:5.1f} tok/s "
              f"({r['decode_tok_s'] / base['decode_tok_s']:.2f}x); ready {r['ready_s']:.0f} s; "
              f"memory RSS {r['rss_gb']:.1f} GB, PSS {r['pss_gb']:.1f} GB")


if __name__ == "__main__":
    main()
