"""The agent's two decisions before answering: plan the searches, then judge whether the evidence suffices.

Both are JSON-schema calls (assistant.llm.structured.ask_json); both have a fallback when the model's reply is
unusable, so the loop always goes on: no plan means "search the question as asked", no judgement
means "take the passages as they are".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from pydantic import BaseModel, Field

from foundation.config import Settings
from assistant.engine.agent.tools import near_duplicate, normalize_query
from assistant.engine.passages import format_passages
from assistant.llm.structured import Budget, ask_json, schema_of
from assistant.llm.protocol import LLM, Message
from foundation.prompts import load_prompt
from foundation.types import Hit

MAX_QUERY_CHARS = 300
PLAN_MAX_TOKENS = 160
JUDGE_MAX_TOKENS = 140


class PlanReply(BaseModel):
    needs_decomposition: bool = False
    sub_queries: list[str] = Field(default_factory=list)
    papers: list[str] = Field(default_factory=list)


class JudgeReply(BaseModel):
    relevant_passages: list[int] = Field(default_factory=list)
    enough: bool = False
    missing: str = ""
    next_query: str = ""


PLAN_SCHEMA = schema_of(PlanReply, "plan")
JUDGE_SCHEMA = schema_of(JudgeReply, "judge_evidence")


@dataclass
class Plan:
    queries: list[str]
    decomposed: bool = False
    paper_names: list[str] = field(default_factory=list)
    papers: list[str] = field(default_factory=list)
    fallback: str = ""

    def summary(self) -> str:
        head = "split into sub-queries" if self.decomposed else "one search"
        scope = f"; scoped to {', '.join(self.papers)}" if self.papers else ""
        note = f" ({self.fallback})" if self.fallback else ""
        return f"{head}: " + " | ".join(self.queries) + scope + note


ENGLISH = frozenset("""the of a an and in to is are was were what how why does do did which for with on by that from
be this it as at or when who whom between than compared much many there their its can""".split())
FOREIGN = frozenset("""le la les des du une est dans pour comment pourquoi quel quelle der die das und ist wie warum
welche ein eine el los las que por para como cómo qué il lo gli della che perché""".split())


def mostly_english(text: str) -> bool:
    """Crude but enough to decide whether to search through the plan's English sub-queries."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.9:
        return False
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
    return bool(words & ENGLISH) or not words & FOREIGN


def plan_messages(question: str, settings: Settings) -> list[Message]:
    return [{"role": "user", "content": load_prompt("plan", settings.prompts_dir).render(question=question)}]


def clean_queries(question: str, reply: PlanReply | None, limit: int) -> tuple[list[str], bool]:
    """The question first, then the model's sub-queries that are new, sane and within the limit."""
    queries = [question]
    if reply is None:
        return queries, False
    wanted = reply.needs_decomposition or not mostly_english(question)
    if not wanted:
        return queries, False
    for sub in reply.sub_queries:
        sub = " ".join(str(sub).split())[:MAX_QUERY_CHARS]
        if len(sub) < 3 or near_duplicate(sub, queries):
            continue
        if len(queries) >= max(1, limit):
            break
        queries.append(sub)
    return queries, len(queries) > 1 and reply.needs_decomposition


async def make_plan(question: str, llm: LLM, settings: Settings, budget: Budget, tools) -> tuple[Plan, float]:
    result = await ask_json(llm, plan_messages(question, settings), PlanReply, PLAN_SCHEMA,
                            max_tokens=PLAN_MAX_TOKENS, budget=budget, name="plan")
    reply = result.value
    queries, decomposed = clean_queries(question, reply, settings.max_subqueries)
    names = [str(n) for n in reply.papers][:5] if reply else []
    # Scope only to papers the question names unambiguously; a hallucinated name must not narrow the search.
    papers = tools.paper_ids_in(question) or [p for p in tools.resolve_papers(names)
                                              if _named_in(question, p, tools)]
    plan = Plan(queries=queries, decomposed=decomposed, paper_names=names, papers=papers,
                fallback="" if reply else f"plan unusable, searching the question as asked ({result.error})")
    return plan, result.seconds


def _named_in(question: str, arxiv_id: str, tools) -> bool:
    title = tools.library.paper_map().get(arxiv_id)
    if title is None:
        return False
    q = f" {normalize_query(question)} "
    title_words = normalize_query(title.title)
    # the whole title, or its leading name before a colon (e.g. "RoBERTa: A Robustly ..."), appears in the question
    lead = normalize_query(title.title.split(":")[0])
    return bool(title_words and f" {title_words} " in q) or bool(lead and len(lead) >= 4 and f" {lead} " in q)


@dataclass
class Judgement:
    enough: bool
    relevant: list[int]
    missing: str = ""
    next_query: str = ""
    failed: str = ""


def judge_messages(query: str, hits: Sequence[Hit], settings: Settings) -> list[Message]:
    """System prompt and passage block identical to the answer prompt's, so the server's prefix cache is reused."""
    system = load_prompt("answer_system", settings.prompts_dir).render()
    user = load_prompt("judge_evidence", settings.prompts_dir).render(
        passages=format_passages(hits, settings), query=query)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def judge_evidence(query: str, hits: Sequence[Hit], llm: LLM, settings: Settings, budget: Budget) -> Judgement:
    if not hits:
        return Judgement(enough=False, relevant=[], missing="no passages found", next_query="")
    result = await ask_json(llm, judge_messages(query, hits, settings), JudgeReply, JUDGE_SCHEMA,
                            max_tokens=JUDGE_MAX_TOKENS, budget=budget, name="judge")
    reply = result.value
    if reply is None:  # no judgement: keep the passages, stop searching for this sub-query
        return Judgement(enough=True, relevant=[], failed=result.error)
    relevant = [n for n in dict.fromkeys(reply.relevant_passages) if 1 <= n <= len(hits)]
    next_query = " ".join(reply.next_query.split())[:MAX_QUERY_CHARS]
    return Judgement(enough=bool(reply.enough), relevant=relevant, missing=reply.missing.strip()[:300],
                     next_query=next_query)
