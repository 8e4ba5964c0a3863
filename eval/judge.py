"""The judge: an LLM backend (assistant.llm_protocol.LLM) asked for schema-constrained JSON verdicts at temperature 0.

A verdict that is not valid JSON of the schema is retried once, then recorded as an error: its
``supported`` is None, which every metric counts as *not* supported. Verdicts are cached by their exact
inputs, so ALCE's repeated checks and resumed runs do not pay twice within a process.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict

from assistant.llm_protocol import LLM, LLMError
from assistant.prompts import load_prompt

# A string enum with the negative first: the 0.5B model answered a boolean "true" to nearly everything
# (judge-check agreement 0.58 on 12 support pairs); this form agreed on 0.69 of 16 (eval/README.md).
SUPPORT_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"verdict": {"type": "string", "enum": ["not supported", "supported"]}},
    "required": ["verdict"], "additionalProperties": False,
}
CORRECT_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"verdict": {"type": "string", "enum": ["incorrect", "correct"]}},
    "required": ["verdict"], "additionalProperties": False,
}
PROMPTS = ("judge_support_system", "judge_support_user", "judge_correct_system", "judge_correct_user")
# Passages longer than this (characters, all together) are cut: the judge's context is small.
MAX_PASSAGE_CHARS = 7000
CHARS_PER_TOKEN = 3.2  # conservative for scientific English with numbers (Qwen tokenizer)


class JudgeVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    supported: bool | None  # the verdict (for correctness: "correct"); None = the judge failed, never a yes
    error: str = ""
    raw: str = ""
    attempts: int = 1


def parse_verdict(raw: str, schema: dict[str, Any]) -> bool:
    """True iff the reply's "verdict" is the schema's positive (last) value; ValueError for anything else."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    choices = schema["properties"]["verdict"]["enum"]
    obj = json.loads(text)
    if not isinstance(obj, dict) or "verdict" not in obj:
        raise ValueError(f"no 'verdict' in {raw[:80]!r}")
    value = obj["verdict"]
    if value not in choices:
        raise ValueError(f"verdict {value!r} is not one of {choices}")
    return value == choices[-1]


class Judge:
    def __init__(self, llm: LLM, prompts_dir: Path, *, retries: int = 1, workers: int = 2, max_tokens: int = 16,
                 max_passage_chars: int = MAX_PASSAGE_CHARS):
        self.llm = llm
        self.prompts_dir = Path(prompts_dir)
        self.retries = retries
        self.workers = workers
        self.max_tokens = max_tokens
        self.max_passage_chars = max_passage_chars
        self._cache: dict[tuple, JudgeVerdict] = {}
        self._lock = threading.Lock()
        self.calls = 0
        self.errors = 0

    @property
    def model(self) -> str:
        return getattr(self.llm, "model", "")

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "prompts": list(PROMPTS), "temperature": 0.0, "retries": self.retries,
                "max_passage_chars": self.max_passage_chars}

    # --- verdicts
    def support(self, passages: Sequence[str], claim: str) -> JudgeVerdict:
        passages = fit_passages(passages, claim, self.max_passage_chars)
        body = format_passages(passages, self.max_passage_chars)
        messages = [
            {"role": "system", "content": load_prompt("judge_support_system", self.prompts_dir).render()},
            {"role": "user", "content": load_prompt("judge_support_user", self.prompts_dir).render(
                passages=body, claim=claim)},
        ]
        return self._ask(("support", body, claim), messages, SUPPORT_SCHEMA)

    def correct(self, question: str, gold: str, answer: str) -> JudgeVerdict:
        messages = [
            {"role": "system", "content": load_prompt("judge_correct_system", self.prompts_dir).render()},
            {"role": "user", "content": load_prompt("judge_correct_user", self.prompts_dir).render(
                question=question, gold=gold, answer=answer.strip()[:3000])},
        ]
        return self._ask(("correct", question, gold, answer), messages, CORRECT_SCHEMA)

    def _ask(self, key: tuple, messages: list[dict[str, str]], schema: dict[str, Any]) -> JudgeVerdict:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        raw, error = "", ""
        attempts = 0
        verdict: JudgeVerdict | None = None
        for attempts in range(1, self.retries + 2):
            with self._lock:
                self.calls += 1
            try:
                raw = self.llm.complete(messages, max_tokens=self.max_tokens, temperature=0.0, json_schema=schema)
                verdict = JudgeVerdict(supported=parse_verdict(raw, schema), raw=raw, attempts=attempts)
                break
            except LLMError as exc:
                error = f"judge backend failed: {exc}"
            except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
                error = f"malformed verdict: {exc}"
        if verdict is None:
            verdict = JudgeVerdict(supported=None, error=error, raw=raw, attempts=attempts)
            with self._lock:
                self.errors += 1
        with self._lock:
            self._cache[key] = verdict
        return verdict


def fit_passages(passages: Sequence[str], claim: str, limit: int) -> list[str]:
    """All passages in order when they fit; else the ones sharing most words with the claim first,
    so that what gets cut is what is least likely to support it."""
    passages = list(passages)
    if sum(len(" ".join(p.split())) for p in passages) <= limit:
        return passages
    from assistant.cite import overlap

    return sorted(passages, key=lambda p: -overlap(claim, p))


def format_passages(passages: Sequence[str], limit: int = MAX_PASSAGE_CHARS) -> str:
    parts, used = [], 0
    for i, text in enumerate(passages, start=1):
        text = " ".join(text.split())
        room = limit - used
        if room <= 0:
            break
        text = text[:room]
        used += len(text)
        parts.append(f"[{i}] {text}")
    return "\n\n".join(parts)


def make_judge(settings, url: str | None = None, model: str | None = None, workers: int = 2) -> Judge:
    """A judge on the answering LLM's backend, or on another OpenAI-compatible endpoint/model when given."""
    from assistant.llm import make_llm

    update = {k: v for k, v in {"llm_base_url": url, "llm_model": model}.items() if v}
    judge_settings = settings.model_copy(update=update) if update else settings
    # Leave room for the instructions, the claim and the verdict within the server's context.
    room = int((judge_settings.vllm_max_model_len - 400) * CHARS_PER_TOKEN)
    return Judge(make_llm(judge_settings), settings.prompts_dir, workers=workers,
                 max_passage_chars=max(2000, min(room, 4 * MAX_PASSAGE_CHARS)))


# --------------------------------------------------------------------------- judge-check: the judge's own accuracy

class CheckPair(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str  # "support" or "correct"
    qid: str
    other_qid: str = ""
    truth: bool
    verdict: bool | None = None
    error: str = ""


class TaskAgreement(BaseModel):
    model_config = ConfigDict(frozen=True)

    n: int
    agreement: float | None  # right verdicts / pairs; an error counts as a wrong verdict
    true_positive_rate: float | None
    true_negative_rate: float | None
    kappa: float | None  # Cohen's kappa between judge and truth (errors excluded)
    errors: int


class JudgeCheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    judge: dict[str, Any]
    agreement: float | None
    tasks: dict[str, TaskAgreement]
    pairs: tuple[CheckPair, ...]
    seconds: float = 0.0


def check_pairs(items: Sequence, tasks: Sequence[str] = ("support", "correct")) -> list[tuple[str, Any, Any, bool]]:
    """Pairs with known truth from a gold set: (task, item, other item, truth).

    support: the item's gold evidence supports its gold answer (true); the evidence of the next
    question about another paper does not (false). correct: the gold answer is correct for its
    question (true); another question's gold answer is not (false).
    """
    answerable = [i for i in items if i.answerable and i.answer and i.evidence]
    pairs = []
    for n, item in enumerate(answerable):
        other = next((answerable[(n + j) % len(answerable)] for j in range(1, len(answerable))
                      if answerable[(n + j) % len(answerable)].arxiv_id != item.arxiv_id), None)
        for task in tasks:
            pairs.append((task, item, item, True))
            if other is not None:
                pairs.append((task, item, other, False))
    return pairs


def run_judge_check(items: Sequence, judge: Judge, tasks: Sequence[str] = ("support", "correct"),
                    limit: int | None = None, on_pair=None) -> JudgeCheckResult:
    """Agreement of the judge with known truth on pairs drawn from the gold set (see check_pairs)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    pairs = check_pairs(items, tasks)
    if limit:
        pairs = pairs[:limit]

    def one(pair) -> CheckPair:
        task, item, other, truth = pair
        if task == "support":
            v = judge.support(other.evidence, item.answer)
        else:
            v = judge.correct(item.question, item.answer, other.answer)
        return CheckPair(task=task, qid=item.id, other_qid=other.id if other is not item else "", truth=truth,
                         verdict=v.supported, error=v.error)

    done: list[CheckPair] = []
    with ThreadPoolExecutor(max_workers=max(1, judge.workers)) as pool:
        for checked in pool.map(one, pairs):
            done.append(checked)
            if on_pair:
                on_pair(checked, len(done), len(pairs))
    by_task = {t: agreement_of([p for p in done if p.task == t]) for t in dict.fromkeys(p.task for p in done)}
    overall = agreement_of(done).agreement if done else None
    return JudgeCheckResult(judge=judge.describe(), agreement=overall, tasks=by_task, pairs=tuple(done),
                            seconds=round(time.perf_counter() - start, 1))


def agreement_of(pairs: Sequence[CheckPair]) -> TaskAgreement:
    n = len(pairs)
    right = sum(1 for p in pairs if p.verdict is not None and p.verdict == p.truth)
    pos = [p for p in pairs if p.truth]
    neg = [p for p in pairs if not p.truth]
    judged = [p for p in pairs if p.verdict is not None]
    kappa = None
    if judged:
        m = len(judged)
        po = sum(1 for p in judged if p.verdict == p.truth) / m
        yes_judge = sum(1 for p in judged if p.verdict) / m
        yes_truth = sum(1 for p in judged if p.truth) / m
        pe = yes_judge * yes_truth + (1 - yes_judge) * (1 - yes_truth)
        kappa = round((po - pe) / (1 - pe), 4) if pe < 1 else None
    return TaskAgreement(
        n=n, agreement=round(right / n, 4) if n else None,
        true_positive_rate=round(sum(1 for p in pos if p.verdict is True) / len(pos), 4) if pos else None,
        true_negative_rate=round(sum(1 for p in neg if p.verdict is False) / len(neg), 4) if neg else None,
        kappa=kappa, errors=sum(1 for p in pairs if p.verdict is None))
