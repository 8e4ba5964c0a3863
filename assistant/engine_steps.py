"""Pieces the agent loop is made of: structured (JSON-schema) calls, passage formatting, the retrieval tools.

Small local models loop, repeat themselves and emit broken JSON (FACTS.md), so every decision call
here is constrained by a JSON schema, parsed and validated in code, retried once with a nudge, and
otherwise reported as failed so the caller can fall back. Passages are untrusted data: text in them
that reads like an instruction to the model is cut out before any prompt sees it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from assistant.config import Settings
from assistant.llm_protocol import LLM, LLMError, Message
from assistant.prompts import load_prompt
from assistant.types import Hit

T = TypeVar("T", bound=BaseModel)

# Sentences in a passage that address the model rather than the reader.
INSTRUCTION_LIKE = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(previous|prior|above|earlier|all|any|system|your)\b"
    r"[^.!?\n]{0,30}\b(instructions?|prompts?|rules?|directions?|context)\b"
    r"|\byou are now\b|\bnew instructions?\s*:|\bsystem prompt\b|\bas an ai (language )?model\b"
    r"|<\|im_(start|end)\|>|\b(assistant|system)\s*:\s",
    re.IGNORECASE,
)
SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|$)")
REMOVED = "[text addressed to the reader model removed]"


def sanitize_passage(text: str) -> tuple[str, bool]:
    """Cut sentences that read like instructions to a model; (clean text, whether anything was cut)."""
    if not INSTRUCTION_LIKE.search(text):
        return text, False
    kept = []
    for sentence in SENTENCE.findall(text):
        if not sentence.strip():
            continue
        if INSTRUCTION_LIKE.search(sentence):
            if not kept or kept[-1] != REMOVED:
                kept.append(REMOVED)
        else:
            kept.append(sentence.strip())
    return " ".join(kept), True


def format_passages(hits: Sequence[Hit], settings: Settings) -> str:
    """Numbered passages as every engine prompt shows them (same text => the server's prefix cache hits)."""
    template = load_prompt("passage", settings.prompts_dir)
    out = []
    for i, h in enumerate(hits, start=1):
        text, _ = sanitize_passage(h.chunk.text.strip())
        out.append(template.render(n=i, title=h.paper_title or h.chunk.arxiv_id, arxiv_id=h.chunk.arxiv_id,
                                   section=h.chunk.section or "-", pages=h.chunk.pages_label, text=text))
    return "\n\n".join(out)


def prompt_version(name: str, settings: Settings) -> str:
    """Short content hash of a prompt file: provenance records which wording produced an answer."""
    return hashlib.sha1(load_prompt(name, settings.prompts_dir).template.encode()).hexdigest()[:8]


def run_sync(coro):
    """Run a coroutine to completion from sync code, also when the calling thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


@dataclass
class Budget:
    """Counts (roughly) the tokens that decision calls spend; rounds stop starting once it is spent."""

    limit: int
    used: int = 0
    calls: int = 0
    failures: list[str] = field(default_factory=list)

    def charge(self, messages: Sequence[Message], reply: str) -> None:
        self.calls += 1
        self.used += sum(approx_tokens(m["content"]) for m in messages) + approx_tokens(reply)

    @property
    def spent(self) -> bool:
        return self.used >= self.limit


async def acomplete(llm: LLM, messages: list[Message], **kwargs: Any) -> str:
    """The LLM's async twin when it has one, else the sync call in a thread (the event loop stays free)."""
    if hasattr(llm, "acomplete"):
        return await llm.acomplete(messages, **kwargs)
    return await asyncio.to_thread(llm.complete, messages, **kwargs)


def parse_json_reply(text: str, model: type[T]) -> T | None:
    """The reply as `model`, tolerating code fences and text around one JSON object; None if unusable."""
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    candidates = [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    if start >= 0:  # cut off by max_tokens (small models ramble inside a string): close it and keep what is there
        candidates += [text[start:].rstrip().rstrip(",") + tail for tail in ('"}', '"]}', "]}", "}")]
    for candidate in candidates:
        try:
            return model.model_validate(json.loads(candidate))
        except (ValueError, ValidationError, TypeError):
            continue
    return None


@dataclass
class JsonResult:
    value: BaseModel | None
    attempts: int
    error: str = ""
    seconds: float = 0.0


async def ask_json(llm: LLM, messages: list[Message], model: type[T], schema: dict[str, Any], *,
                   max_tokens: int, budget: Budget | None = None, name: str = "") -> JsonResult:
    """One structured decision: constrained by `schema`, validated as `model`, retried once, never raises.

    The retry adds a nudge and a little temperature, since a greedy repeat of the same prompt
    would reproduce the same broken reply.
    """
    start = time.perf_counter()
    error = ""
    for attempt in (1, 2):
        msgs = messages if attempt == 1 else [*messages, {
            "role": "user", "content": "Your previous reply was not valid JSON for the schema. Reply with the JSON object only."}]
        try:
            reply = await acomplete(llm, msgs, max_tokens=max_tokens, temperature=0.0 if attempt == 1 else 0.3,
                                    json_schema=schema)
        except LLMError as exc:
            error = f"{name}: {exc}"
            if _fatal(exc):
                break
            continue
        if budget is not None:
            budget.charge(msgs, reply)
        value = parse_json_reply(reply, model)
        if value is not None:
            return JsonResult(value, attempt, seconds=round(time.perf_counter() - start, 3))
        error = f"{name}: unusable JSON reply {reply[:120]!r}"
    if budget is not None:
        budget.failures.append(error)
    return JsonResult(None, 2, error, round(time.perf_counter() - start, 3))


def _fatal(exc: LLMError) -> bool:
    """A server that is not there will not be there a moment later either: do not wait on a retry."""
    text = str(exc)
    return text.startswith("no LLM server") or "did not answer within" in text


def schema_of(model: type[BaseModel], title: str) -> dict[str, Any]:
    """A strict JSON schema for vLLM's structured output: every property required, nothing extra."""
    schema = model.model_json_schema()
    schema["title"] = title
    schema["additionalProperties"] = False
    schema["required"] = list(schema.get("properties", {}))
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
        prop.pop("title", None)
    return schema


# --- the retrieval tools ------------------------------------------------------------------

def normalize_query(query: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", query.lower()))


def near_duplicate(query: str, issued: Sequence[str], threshold: float = 0.8) -> bool:
    """Same words (Jaccard >= threshold) as a query already issued: a small model repeating itself."""
    words = set(normalize_query(query).split())
    if not words:
        return True
    for old in issued:
        other = set(normalize_query(old).split())
        if other and len(words & other) / len(words | other) >= threshold:
            return True
    return False


class Tools:
    """What the agent may do to find evidence: every Retriever mode, neighbours, metadata, paper scoping.

    Modes come from the Retriever at run time, so ColBERT/BM25/hybrid/RAPTOR plug in as they land.
    """

    def __init__(self, retriever, settings: Settings):
        self.retriever = retriever
        self.library = retriever.library
        self.settings = settings

    def modes(self) -> list[str]:
        return self.retriever.modes()

    def search(self, query: str, mode: str, k: int, papers: Sequence[str] | None = None,
               extra_vectors: Sequence[Any] = ()) -> list[Hit]:
        return self.retriever.search(query, mode, k, papers or None, extra_vectors)

    def relevance(self, query: str, papers: Sequence[str] | None = None) -> float:
        """Best dense cosine: a scale comparable across questions, whatever the retrieval mode."""
        top = self.library.dense.search(query, 1, papers or None)
        return float(top[0][1]) if top else 0.0

    def neighbours(self, hit: Hit, before: int = 1, after: int = 1) -> list[Hit]:
        """The passages around a hit in reading order ("read on in this section of paper X")."""
        chunks = [c for c in self.library.store.neighbours(hit.chunk.id, before, after) if c.id != hit.chunk.id]
        return [Hit(chunk=c, score=hit.score, rank=0, source="neighbour", paper=hit.paper) for c in chunks]

    def resolve_papers(self, names: Sequence[str]) -> list[str]:
        """arXiv ids of papers named by id or unambiguous title words; names that match nothing are dropped."""
        papers = self.library.paper_map()
        found: list[str] = []
        for name in names:
            name = name.strip()
            if not name:
                continue
            match = re.search(r"\d{4}\.\d{4,5}", name)
            if match and match.group(0) in papers:
                found.append(match.group(0))
                continue
            key = normalize_query(name)
            if len(key) < 4:
                continue
            hits = [pid for pid, p in papers.items() if key and key in normalize_query(p.title)]
            if len(hits) == 1:
                found.append(hits[0])
        return list(dict.fromkeys(found))

    def paper_ids_in(self, question: str) -> list[str]:
        """arXiv ids written in the question itself (the user scoping the question to a paper)."""
        papers = self.library.paper_map()
        return [m for m in dict.fromkeys(re.findall(r"\d{4}\.\d{4,5}", question)) if m in papers]

    def is_empty(self) -> bool:
        return self.library.dense.count() == 0


def answer_messages(question: str, hits: Sequence[Hit], settings: Settings) -> list[Message]:
    """The single-shot answer prompt over sanitized passages; its prefix matches the judge prompt's."""
    system = load_prompt("answer_system", settings.prompts_dir).render()
    user = load_prompt("answer_user", settings.prompts_dir).render(passages=format_passages(hits, settings),
                                                                  question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def astream(llm: LLM, messages: list[Message], **kwargs) -> AsyncIterator[str]:
    """The LLM's async stream, or its sync stream pumped from a thread so the loop keeps serving events."""
    if hasattr(llm, "astream"):
        async for piece in llm.astream(messages, **kwargs):
            yield piece
        return
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    done = object()

    def pump() -> None:
        try:
            for piece in llm.stream(messages, **kwargs):
                loop.call_soon_threadsafe(q.put_nowait, piece)
        except BaseException as exc:  # handed to the consumer
            loop.call_soon_threadsafe(q.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(q.put_nowait, done)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    while (item := await q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
