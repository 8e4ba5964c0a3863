"""The first start's measurement: how fast this machine prefills and decodes on the path the server chose.

Prefill bounds the first token (the answer prompt is ~600 new tokens); decode bounds the rest (the picked
numbers and a direct answer of up to ~40 tokens). A flag says what a CPU can do, not how fast this one does
it beside everything else: so the first start of each (CPU, model, weights) measures both, 5-10 seconds,
keeps the numbers in the home, shows them in `server status`, and where an answer would take longer than
SLOW_ANSWER_S says so once, naming the smaller model.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable

import httpx
from pydantic import BaseModel

ANSWER_PROMPT_TOKENS = 600   # the default answer path's new prompt tokens (bench/ttft.py), about
ANSWER_REPLY_TOKENS = 40     # the picked quotes' numbers and a direct answer of <= 30 words, about
SLOW_ANSWER_S = 10.0
PROBE_WORDS = 200            # ~260 tokens: ~5 s at the slowest path measured (AVX2, float32, 1.5B)
PROBE_DECODE_TOKENS = 8


class Probe(BaseModel):
    cpu: str
    model: str
    weights: str
    prompt_tokens: int
    seconds: float
    decode_tok_s: float = 0.0
    measured_at: float
    advice: str = ""

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.seconds if self.seconds else 0.0

    @property
    def first_token_s(self) -> float:
        """The answer path's first token on this path, from the measured prefill rate."""
        return ANSWER_PROMPT_TOKENS / self.prefill_tok_s if self.prefill_tok_s else float("inf")

    @property
    def answer_s(self) -> float:
        """An answer's total on this path: its prompt's prefill and a short reply's decode."""
        decode = ANSWER_REPLY_TOKENS / self.decode_tok_s if self.decode_tok_s else 0.0
        return self.first_token_s + decode

    def key(self) -> str:
        return key_of(self.cpu, self.model, self.weights)

    def describe(self) -> str:
        return (f"prefill {self.prefill_tok_s:.0f} tokens/s, decode {self.decode_tok_s:.1f} tokens/s on this CPU "
                f"({self.weights}): an answer's first token in ~{self.first_token_s:.0f} s, all of it in "
                f"~{self.answer_s:.0f} s")


def key_of(cpu: str, model: str, weights: str) -> str:
    return f"{cpu} | {model} | {weights}"


def measure(base_url: str, model: str, timeout_s: float = 120.0) -> tuple[int, float, float]:
    """(prompt tokens, prefill seconds, decode tokens/s): one fresh prompt (a random first line defeats the
    prefix cache) with one token out, then the same prompt again (now cached), streamed, with
    PROBE_DECODE_TOKENS out: decode is the time between its first and last token."""
    rng = random.Random()
    words = " ".join(rng.choice(_WORDS) for _ in range(PROBE_WORDS))
    body = {"model": model, "messages": [{"role": "user", "content": f"{rng.random()}\n{words}"}],
            "max_tokens": 1, "temperature": 0.0, "ignore_eos": True}
    start = time.perf_counter()
    reply = httpx.post(f"{base_url}/chat/completions", json=body, timeout=timeout_s)
    prefill_s = time.perf_counter() - start
    reply.raise_for_status()
    prompt_tokens = int(reply.json()["usage"]["prompt_tokens"])
    stamps: list[float] = []
    with httpx.stream("POST", f"{base_url}/chat/completions", timeout=timeout_s,
                      json={**body, "max_tokens": PROBE_DECODE_TOKENS, "stream": True}) as events:
        events.raise_for_status()
        for line in events.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]" and json.loads(line[6:]).get("choices"):
                stamps.append(time.perf_counter())
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    return prompt_tokens, prefill_s, decode


def advice(probe: Probe, model_path: Path) -> str:
    """What to say when the answer's first token is slow here: the smaller model, if this is not it."""
    if probe.answer_s <= SLOW_ANSWER_S:
        return ""
    small = model_path.parent / model_path.name.replace("1.5b", "0.5b")
    if small == model_path or "0.5b" in model_path.name.lower():
        return (f"on this CPU {probe.model} takes ~{probe.first_token_s:.0f} s to an answer's first token and "
                f"~{probe.answer_s:.0f} s to its end")
    return (f"on this CPU {probe.model} ({probe.weights}) takes ~{probe.first_token_s:.0f} s to an answer's first "
            f"token and ~{probe.answer_s:.0f} s to its end. The 0.5B model answers ~3x sooner, less well: set "
            f"llm_model_path = \"{small}\" and llm_model = \"{small.name}\" (make setup-model-small)")


def probe_once(record: "ProbeRecord", url: str, cpu: str, model: str, weights: str, model_path: Path,
               announce: Callable[[str], None]) -> Probe | None:
    """Measure, keep the numbers, and say once when an answer will be slow; None when the server did not
    answer the measurement (a start is not failed by it: the next start measures again)."""
    try:
        tokens, seconds, decode = measure(url, model)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    probe = Probe(cpu=cpu, model=model, weights=weights, prompt_tokens=tokens, seconds=seconds,
                  decode_tok_s=decode, measured_at=time.time())
    probe.advice = advice(probe, model_path)
    record.put(probe)
    if probe.advice:
        announce(probe.advice)
    return probe


class ProbeRecord:
    """probes.json in the home: one measurement per (CPU, model, weights), newest kept."""

    def __init__(self, path: Path):
        self.path = path

    def all(self) -> dict[str, Probe]:
        try:
            data = json.loads(self.path.read_text())
            return {k: Probe.model_validate(v) for k, v in data.items()}
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: measured again at the next start

    def get(self, key: str) -> Probe | None:
        return self.all().get(key)

    def put(self, probe: Probe) -> None:
        probes = self.all()
        probes[probe.key()] = probe
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v.model_dump() for k, v in probes.items()}, indent=1))
        tmp.replace(self.path)


# Ordinary technical words: tokenised like the papers' prose, one or two tokens each.
_WORDS = ("model attention layer token training data results table shows the of and a in we our method "
          "performance baseline encoder decoder parameters learning rate batch size accuracy score task "
          "language dataset evaluation sequence length memory compute heads embedding loss optimizer "
          "fine-tuning pretraining benchmark improvement compared previous work approach propose section "
          "figure experiments higher lower average best large small number steps").split()
