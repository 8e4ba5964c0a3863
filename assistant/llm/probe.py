"""The first start's measurement: how fast this machine prefills on the path the server was started with.

Prefill bounds the first token (the answer prompt is ~600 new tokens; the pick's reply is a few). A flag says
what a CPU can do, not how fast this one does it beside everything else: so the first start of each
(CPU, model, weights) measures it, about 5 seconds, keeps the number in the home, shows it in
`server status`, and where the answer's first token would take longer than SLOW_FIRST_TOKEN_S says so once,
naming the smaller model.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
from pydantic import BaseModel

ANSWER_PROMPT_TOKENS = 600   # the default answer path's new prompt tokens (bench/ttft.py), about
SLOW_FIRST_TOKEN_S = 10.0
PROBE_WORDS = 200            # ~260 tokens: ~5 s at the slowest path measured (AVX2, float32, 1.5B)


class Probe(BaseModel):
    cpu: str
    model: str
    weights: str
    prompt_tokens: int
    seconds: float
    measured_at: float
    advice: str = ""

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.seconds if self.seconds else 0.0

    @property
    def first_token_s(self) -> float:
        """The answer path's first token on this path, from the measured prefill rate."""
        return ANSWER_PROMPT_TOKENS / self.prefill_tok_s if self.prefill_tok_s else float("inf")

    def key(self) -> str:
        return key_of(self.cpu, self.model, self.weights)

    def describe(self) -> str:
        return (f"prefill {self.prefill_tok_s:.0f} tokens/s on this CPU ({self.weights}): an answer's first token "
                f"in ~{self.first_token_s:.0f} s")


def key_of(cpu: str, model: str, weights: str) -> str:
    return f"{cpu} | {model} | {weights}"


def measure(base_url: str, model: str, timeout_s: float = 120.0) -> tuple[int, float]:
    """(prompt tokens, seconds) of one fresh prompt (a random first line: no prefix cache) with one token out."""
    rng = random.Random()
    words = " ".join(rng.choice(_WORDS) for _ in range(PROBE_WORDS))
    body = {"model": model, "messages": [{"role": "user", "content": f"{rng.random()}\n{words}"}],
            "max_tokens": 1, "temperature": 0.0}
    start = time.perf_counter()
    reply = httpx.post(f"{base_url}/chat/completions", json=body, timeout=timeout_s)
    seconds = time.perf_counter() - start
    reply.raise_for_status()
    return int(reply.json()["usage"]["prompt_tokens"]), seconds


def advice(probe: Probe, model_path: Path) -> str:
    """What to say when the answer's first token is slow here: the smaller model, if this is not it."""
    if probe.first_token_s <= SLOW_FIRST_TOKEN_S:
        return ""
    small = model_path.parent / model_path.name.replace("1.5b", "0.5b")
    if small == model_path or "0.5b" in model_path.name.lower():
        return (f"this CPU prefills {probe.prefill_tok_s:.0f} tokens/s with {probe.model}: an answer's first "
                f"token takes ~{probe.first_token_s:.0f} s")
    return (f"this CPU prefills {probe.prefill_tok_s:.0f} tokens/s with {probe.model} ({probe.weights}): an "
            f"answer's first token takes ~{probe.first_token_s:.0f} s. The 0.5B model answers ~3x sooner, less "
            f"well: set llm_model_path = \"{small}\" and llm_model = \"{small.name}\" (make setup-model-small)")


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
