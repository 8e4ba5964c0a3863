"""The state of one agent run: each sub-query's search history and what the run has spent and seen."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from assistant.llm.structured import Budget
from assistant.engine.hyde import HydeResult
from assistant.engine.retrieve import Retrieval
from assistant.engine.agent.plan import Judgement, Plan
from foundation.types import Hit


@dataclass
class Track:
    """One sub-query's search history."""
    query: str
    rounds: list[tuple[str, list[Hit], Judgement | None]] = field(default_factory=list)

    def issued(self) -> list[str]:
        return [q for q, _, _ in self.rounds]

    def enough(self) -> bool:
        return any(j is not None and j.enough for _, _, j in self.rounds)

    def ranked(self) -> list[Hit]:
        """One round: as retrieved (same order as the judge saw: prefix cache). More: judged-relevant first."""
        if len(self.rounds) == 1:
            return list(self.rounds[0][1])
        relevant = [hits[n - 1] for _, hits, j in self.rounds if j for n in j.relevant]
        rest = [hits[i] for i in range(max(len(hits) for _, hits, _ in self.rounds))
                for _, hits, _ in self.rounds if i < len(hits)]
        return _dedupe([*relevant, *rest])


@dataclass
class RunState:
    question: str
    papers: list[str] | None
    mode: str
    use_hyde: bool
    budget: Budget
    start: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    plan: Plan | None = None
    hyde: HydeResult | None = None
    tracks: list[Track] = field(default_factory=list)
    first: Retrieval | None = None  # the question as asked, retrieved before the plan
    found: list[Retrieval] = field(default_factory=list)  # every sub-query's retrieval, in order
    routed: bool = False  # a question about "the paper", scoped to the paper it means (engine/route.py)
    errors: list[str] = field(default_factory=list)
    sanitized: list[str] = field(default_factory=list)

    def queries(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q for t in self.tracks for q in t.issued())) or (self.question,)

    def add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = round(self.timings.get(key, 0.0) + seconds, 3)


def _dedupe(hits: Sequence[Hit]) -> list[Hit]:
    seen, out = set(), []
    for h in hits:
        if h.chunk.id not in seen:
            seen.add(h.chunk.id)
            out.append(h)
    return out
