"""The judge: an LLM backend (assistant.llm.protocol.LLM) asked for schema-constrained JSON verdicts at temperature 0.

A verdict that is not valid JSON of the schema is retried once, then recorded as an error: its
``supported`` is None, which every metric counts as *not* supported. Verdicts are cached by their exact
inputs, so ALCE's repeated checks and resumed runs do not pay twice within a process.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict

from assistant.llm.protocol import LLM, LLMError
from assistant.llm.structured import ask_json_sync, schema_of
from foundation.prompts import load_prompt

# A string enum with the negative first: the 0.5B model answered a boolean "true" to nearly everything
# (judge-check agreement 0.58 on 12 support pairs); this form agreed on 0.69 of 16 (eval/README.md).
class SupportReply(BaseModel):
    verdict: Literal["not supported", "supported"]


class CorrectReply(BaseModel):
    verdict: Literal["incorrect", "correct"]


SUPPORT_SCHEMA = schema_of(SupportReply, "support")
CORRECT_SCHEMA = schema_of(CorrectReply, "correct")
REPLIES = {"support": (SupportReply, SUPPORT_SCHEMA), "correct": (CorrectReply, CORRECT_SCHEMA)}
PROMPTS = ("judge_support_system", "judge_support_user", "judge_correct_system", "judge_correct_user")
SCORED_PROMPTS = ("judge_support_system", "judge_support_yesno", "judge_correct_system", "judge_correct_yesno")
TASKS = ("support", "correct")
# Passages longer than this (characters, all together) are cut: the judge's context is small.
MAX_PASSAGE_CHARS = 7000
CHARS_PER_TOKEN = 3.2  # conservative for scientific English with numbers (Qwen tokenizer)


class JudgeVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    supported: bool | None  # the verdict (for correctness: "correct"); None = the judge failed, never a yes
    score: float | None = None  # P(yes) when the backend gives log-probabilities (scored judging)
    error: str = ""
    raw: str = ""
    attempts: int = 1


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
        # Scored judging: a Yes/No prompt whose P(Yes) is compared with a per-task threshold, which
        # calibrate() fits on judge-check pairs. Backends without log-probabilities get JSON verdicts.
        self.scored = callable(getattr(llm, "yes_probability", None))
        self.thresholds: dict[str, float] = {task: 0.5 for task in TASKS}
        self._lock = threading.Lock()
        self.calls = 0
        self.errors = 0

    @property
    def model(self) -> str:
        return getattr(self.llm, "model", "")

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "prompts": list(SCORED_PROMPTS if self.scored else PROMPTS), "temperature": 0.0,
                "retries": self.retries, "max_passage_chars": self.max_passage_chars,
                "mode": "P(Yes) >= threshold" if self.scored else "JSON verdict",
                **({"thresholds": dict(self.thresholds)} if self.scored else {})}

    def calibrate(self, pairs: Sequence["CheckPair"]) -> dict[str, float]:
        """Per task, the P(Yes) threshold with the best balanced accuracy on judge-check pairs."""
        for task in TASKS:
            scored = [(p.score, p.truth) for p in pairs if p.task == task and p.score is not None]
            if any(t for _, t in scored) and any(not t for _, t in scored):
                self.thresholds[task] = best_threshold(scored)
        return dict(self.thresholds)

    # --- verdicts
    def support(self, passages: Sequence[str], claim: str) -> JudgeVerdict:
        passages = fit_passages(passages, claim, self.max_passage_chars)
        body = format_passages(passages, self.max_passage_chars)
        messages = [
            {"role": "system", "content": load_prompt("judge_support_system", self.prompts_dir).render()},
            {"role": "user", "content": load_prompt(self._user_prompt("support"), self.prompts_dir).render(
                passages=body, claim=claim)},
        ]
        return self._ask(("support", body, claim), messages)

    def correct(self, question: str, gold: str, answer: str) -> JudgeVerdict:
        messages = [
            {"role": "system", "content": load_prompt("judge_correct_system", self.prompts_dir).render()},
            {"role": "user", "content": load_prompt(self._user_prompt("correct"), self.prompts_dir).render(
                question=question, gold=gold, answer=answer.strip()[:3000])},
        ]
        return self._ask(("correct", question, gold, answer), messages)

    def _user_prompt(self, task: str) -> str:
        return f"judge_{task}_yesno" if self.scored else f"judge_{task}_user"

    def _ask(self, key: tuple, messages: list[dict[str, str]]) -> JudgeVerdict:
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = self._ask_scored(messages) if self.scored else self._ask_json(messages, *REPLIES[key[0]])
            with self._lock:
                self._cache[key] = cached
        if cached.score is not None:  # the threshold may have been calibrated since the score was cached
            return cached.model_copy(update={"supported": cached.score >= self.thresholds[key[0]]})
        return cached

    def _ask_scored(self, messages: list[dict[str, str]]) -> JudgeVerdict:
        error, attempts = "", 0
        for attempts in range(1, self.retries + 2):
            with self._lock:
                self.calls += 1
            try:
                score = float(self.llm.yes_probability(messages))
                return JudgeVerdict(supported=None, score=round(score, 5), raw=f"P(yes)={score:.4f}", attempts=attempts)
            except LLMError as exc:
                error = f"judge backend failed: {exc}"
        with self._lock:
            self.errors += 1
        return JudgeVerdict(supported=None, error=error, attempts=attempts)

    def _ask_json(self, messages: list[dict[str, str]], reply_model: type[BaseModel], schema: dict[str, Any]) -> JudgeVerdict:
        with self._lock:
            self.calls += 1
        result = ask_json_sync(self.llm, messages, reply_model, schema, max_tokens=self.max_tokens,
                               retries=self.retries, name="judge")
        if result.value is None:
            with self._lock:
                self.errors += 1
            return JudgeVerdict(supported=None, error=result.error, attempts=result.attempts)
        choices = reply_model.model_fields["verdict"].annotation.__args__
        verdict = result.value.verdict
        return JudgeVerdict(supported=verdict == choices[-1], raw=verdict, attempts=result.attempts)


def best_threshold(scored: Sequence[tuple[float, bool]]) -> float:
    """The cut (midway between adjacent scores) with the best balanced accuracy; ties go to the lower cut."""
    values = sorted({s for s, _ in scored})
    cuts = [values[0] - 1e-6] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1e-6]
    pos = [s for s, t in scored if t]
    neg = [s for s, t in scored if not t]

    def balanced(cut: float) -> float:
        return (sum(s >= cut for s in pos) / len(pos) + sum(s < cut for s in neg) / len(neg)) / 2

    return round(max(cuts, key=lambda c: (balanced(c), -c)), 5)


def auc(scored: Sequence[tuple[float, bool]]) -> float | None:
    """Area under the ROC curve: how often a true pair outscores a false one (threshold-free)."""
    pos = [s for s, t in scored if t]
    neg = [s for s, t in scored if not t]
    if not pos or not neg:
        return None
    return round(sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg)), 4)


def fit_passages(passages: Sequence[str], claim: str, limit: int) -> list[str]:
    """All passages in order when they fit; else the ones sharing most words with the claim first,
    so that what gets cut is what is least likely to support it."""
    passages = list(passages)
    if sum(len(" ".join(p.split())) for p in passages) <= limit:
        return passages
    from foundation.text import overlap

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
    from assistant.llm.server import make_llm

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
    kind: str = "same"  # same | evidence | other-paper | neighbour | number | name (eval/pairs.py)
    truth: bool
    verdict: bool | None = None
    score: float | None = None
    error: str = ""


class TaskAgreement(BaseModel):
    model_config = ConfigDict(frozen=True)

    n: int
    agreement: float | None  # right verdicts / pairs; an error counts as a wrong verdict
    true_positive_rate: float | None
    true_negative_rate: float | None
    kappa: float | None  # Cohen's kappa between judge and truth (errors excluded)
    errors: int
    auc: float | None = None  # scored judging only: threshold-free separation of true and false pairs
    threshold: float | None = None  # scored judging only: the P(Yes) cut the verdicts used


class JudgeCheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    judge: dict[str, Any]
    agreement: float | None
    tasks: dict[str, TaskAgreement]
    pairs: tuple[CheckPair, ...]
    seconds: float = 0.0


def check_pairs(items: Sequence, tasks: Sequence[str] = ("support", "correct"), store=None,
                seed: int = 0) -> list[tuple]:
    """Pairs with known truth from a gold set: (task, kind, item, other item, passages, claim, truth).

    support: the item's gold evidence supports its gold answer (true); the evidence of the next question
    about another paper does not (false); and the hard near-misses of eval/pairs.py (false): the answer
    against the passage beside its evidence (needs `store`), the answer with a number or a name changed.
    correct: the gold answer and the gold evidence sentences are correct answers (true); another question's
    answer, the passage beside the evidence and the answer with a number changed are not (false).
    """
    import random

    from eval.pairs import change_name, change_number, name_pool, neighbour_text

    rng = random.Random(seed)
    answerable = [i for i in items if i.answerable and i.answer and i.evidence]
    pool = name_pool([i.answer for i in answerable] + [e for i in answerable for e in i.evidence])
    pairs = []
    for n, item in enumerate(answerable):
        other = next((answerable[(n + j) % len(answerable)] for j in range(1, len(answerable))
                      if answerable[(n + j) % len(answerable)].arxiv_id != item.arxiv_id), None)
        near = neighbour_text(store, item.evidence[0], item.arxiv_id) if store is not None else None
        for task in tasks:
            if task == "correct":
                pairs.extend(_correct_pairs(item, other, near, rng))
                continue
            pairs.append((task, "same", item, item, tuple(item.evidence), item.answer, True))
            if other is not None:
                pairs.append((task, "other-paper", item, other, tuple(other.evidence), item.answer, False))
            if near:
                pairs.append((task, "neighbour", item, item, (near,), item.answer, False))
            for kind, changed in (("number", change_number(item.answer, rng)),
                                  ("name", change_name(item.answer, pool, rng))):
                if changed:
                    pairs.append((task, kind, item, item, tuple(item.evidence), changed, False))
    return pairs


def _correct_pairs(item, other, near: str | None, rng) -> list[tuple]:
    """Answers of known correctness for one question. Besides the gold answer itself (true) and another
    question's (false), answers shaped like the app's: the paper's own evidence sentences, which state the
    answer in other words and with more detail (true); the passage beside that evidence in the same
    section (`near`), on topic but not the answer (false); the gold answer with one number changed (false)."""
    from eval.pairs import change_number

    task = "correct"
    pairs = [(task, "same", item, item, (), item.answer, True),
             (task, "evidence", item, item, (), " ".join(item.evidence), True)]
    if other is not None:
        pairs.append((task, "other-paper", item, other, (), other.answer, False))
    if near:
        pairs.append((task, "neighbour", item, item, (), " ".join(near.split()[:80]), False))
    changed = change_number(item.answer, rng)
    if changed:
        pairs.append((task, "number", item, item, (), changed, False))
    return pairs


def run_judge_check(items: Sequence, judge: Judge, tasks: Sequence[str] = ("support", "correct"),
                    limit: int | None = None, on_pair=None, store=None) -> JudgeCheckResult:
    """Agreement of the judge with known truth on pairs drawn from the gold set (see check_pairs)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    pairs = check_pairs(items, tasks, store)
    if limit:
        pairs = pairs[:limit]

    def one(pair) -> CheckPair:
        task, kind, item, other, passages, claim, truth = pair
        v = judge.support(passages, claim) if task == "support" else judge.correct(item.question, item.answer, claim)
        return CheckPair(task=task, qid=item.id, other_qid=other.id if other is not item else "", kind=kind,
                         truth=truth, verdict=v.supported, score=v.score, error=v.error)

    done: list[CheckPair] = []
    with ThreadPoolExecutor(max_workers=max(1, judge.workers)) as pool:
        for checked in pool.map(one, pairs):
            done.append(checked)
            if on_pair:
                on_pair(checked, len(done), len(pairs))
    if judge.scored:  # fit each task's P(Yes) cut on these pairs, then read the verdicts at that cut
        judge.calibrate(done)
        done = [p.model_copy(update={"verdict": p.score >= judge.thresholds[p.task]}) if p.score is not None else p
                for p in done]
    by_task = {t: agreement_of([p for p in done if p.task == t], judge.thresholds.get(t) if judge.scored else None)
               for t in dict.fromkeys(p.task for p in done)}
    for task in ("support", "correct"):  # the near-misses alone, beside the true pairs
        hard = [p for p in done if p.task == task and (p.truth or p.kind in ("neighbour", "number", "name"))]
        if any(not p.truth for p in hard):
            by_task[f"{task}_hard"] = agreement_of(hard, judge.thresholds.get(task) if judge.scored else None)
    overall = agreement_of(done).agreement if done else None
    return JudgeCheckResult(judge=judge.describe(), agreement=overall, tasks=by_task, pairs=tuple(done),
                            seconds=round(time.perf_counter() - start, 1))


def agreement_of(pairs: Sequence[CheckPair], threshold: float | None = None) -> TaskAgreement:
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
        kappa=kappa, errors=sum(1 for p in pairs if p.verdict is None),
        auc=auc([(p.score, p.truth) for p in pairs if p.score is not None]), threshold=threshold)
