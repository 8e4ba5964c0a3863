"""The agentic engine: a planner and a search loop (a llama-index Workflow of typed steps) in front of the
same answering steps as the single-shot engine (engine/answer.py: evidence, gate, write, check, Answer).

    StartEvent -> plan (+ HyDE, concurrently) -> SubQuery x n -> retrieve -> Retrieved -> judge
        judge -> SubQuery (another round: new query + neighbouring passages) | Evidence
    Evidence x n -> gather (merge passages) -> Pooled -> answer (the shared steps) -> StopEvent(Answer)

The question itself is retrieved first: a question far from every passage is declined there, before any model
call, by the shared gate. Independent sub-queries run in concurrent workers (vLLM batches their judge calls).
Every step reports what it does as AskEvents (plan, search, passages, quotes, token, verify, status, error,
answer) through the workflow's event stream. Nothing here crashes on a bad model reply: unusable JSON is
retried once and then a fallback is taken (assistant.llm.structured.ask_json).

Backends: the engine needs only the LLM protocol (complete with json_schema, stream; acomplete / astream used
when present). The default is the OpenAI-compatible client to vLLM.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Iterator, Sequence

from llama_index.core.workflow import Context, Event, StartEvent, StopEvent, Workflow, step

from assistant.engine.agent.plan import Judgement, judge_evidence, make_plan, mostly_english
from assistant.engine.agent.state import RunState, Track, _dedupe
from assistant.engine.agent.tools import Tools, near_duplicate
from assistant.engine.answer import Answerer, clean_question
from assistant.engine.build import AnswerBuilder
from assistant.engine.hyde import ahyde
from assistant.engine.passages import sanitize_passage
from assistant.engine.retrieve import Retrieval, RetrievalError
from assistant.engine.route import about_one_paper, paper_meant
from assistant.llm.protocol import LLM
from assistant.llm.structured import Budget
from foundation.config import Settings
from foundation.prompts import prompt_version
from foundation.threads import aiter_in_thread, iter_in_thread
from foundation.types import Answer, AskEvent, Hit

PROMPTS = ("plan", "judge_evidence", "answer_system", "passage")
NEIGHBOURS_PER_ROUND = 2


class Emit(Event):
    """Carries one AskEvent out through the workflow's stream."""
    ask: AskEvent


class SubQuery(Event):
    index: int
    query: str
    round: int = 1


class Retrieved(Event):
    index: int
    query: str
    round: int
    hits: list[Hit]


class Evidence(Event):
    index: int


class Pooled(Event):
    """The passages every sub-query gathered, merged, with the gate's retrieval scores."""
    retrieval: Retrieval


class AgentWorkflow(Workflow):
    """One run per instance: the run's state lives on the instance, steps share one event loop."""

    def __init__(self, tools: Tools, answerer: Answerer, state: RunState, judge_abstains: bool = True):
        super().__init__(timeout=None)
        self.tools, self.answerer, self.state = tools, answerer, state
        self.llm, self.settings = answerer.llm, answerer.settings
        self.judge_abstains = judge_abstains

    def emit(self, ctx: Context, kind: str, text: str = "", hits: Sequence[Hit] = (), answer: Answer | None = None):
        ctx.write_event_to_stream(Emit(ask=AskEvent(kind=kind, text=text, hits=tuple(hits), answer=answer)))

    # --- 1. plan (HyDE alongside), after the question's own retrieval
    @step
    async def plan(self, ctx: Context, ev: StartEvent) -> SubQuery | Pooled | StopEvent | None:
        st, k = self.state, self.settings.top_k
        if self.tools.is_empty():
            self.emit(ctx, "error", "the index is empty: ingest papers first (paper-assistant ingest ...)")
            return StopEvent(result=self.builder(()).abstain("empty index"))
        # A question far from every passage is declined by the shared gate before any model call (English only:
        # the embedder is English, a question in another language is judged on its English sub-queries).
        if mostly_english(st.question):
            t0 = time.perf_counter()
            st.first = await asyncio.to_thread(self.tools.retrieve, st.question, st.mode, k, st.papers)
            routed = paper_meant(st.question, st.first.hits) if not st.papers and about_one_paper(st.question) else None
            if routed:  # a question about "the paper": searched within the paper it means (engine/route.py)
                st.papers, st.routed = [routed], True
                st.first = await asyncio.to_thread(self.tools.retrieve, st.question, st.mode, k, st.papers)
            st.add_time("retrieve_s", time.perf_counter() - t0)
            if st.first.relevance < self.settings.min_relevance:
                st.tracks = [Track(st.question, [(st.question, list(st.first.hits), None)])]
                return Pooled(retrieval=st.first)
        self.emit(ctx, "plan", "planning")
        t0 = time.perf_counter()
        jobs = [make_plan(st.question, self.llm, self.settings, st.budget, self.tools)]
        if st.use_hyde:
            jobs.append(ahyde(st.question, self.llm, self.tools.library.embedder, self.settings))
        results = await asyncio.gather(*jobs)
        st.plan, plan_s = results[0]
        st.add_time("plan_s", plan_s)
        if st.use_hyde:
            st.hyde = results[1]
            st.add_time("hyde_s", st.hyde.seconds)
            if st.hyde.error:
                self.emit(ctx, "error", f"HyDE skipped: {st.hyde.error}")
        st.add_time("plan_wall_s", time.perf_counter() - t0)
        if st.plan.fallback:
            st.errors.append(st.plan.fallback)
        if st.plan.papers and not st.papers:
            st.papers = st.plan.papers
            st.first = None  # searched again within the papers the question names
        self.emit(ctx, "plan", st.plan.summary())
        st.tracks = [Track(q) for q in st.plan.queries]
        for i, q in enumerate(st.plan.queries):
            ctx.send_event(SubQuery(index=i, query=q))
        return None

    # --- 2. retrieve with the tools
    @step(num_workers=4)
    async def retrieve(self, ctx: Context, ev: SubQuery) -> Retrieved:
        st, k = self.state, self.settings.top_k
        t0 = time.perf_counter()
        self.emit(ctx, "search", f"searching ({st.mode}{', scoped' if st.papers else ''}): {ev.query}")
        vectors = st.hyde.vectors if (st.hyde and ev.index == 0 and ev.round == 1) else []
        if ev.index == 0 and ev.round == 1 and st.first is not None and not vectors:
            found = st.first  # the question as asked: retrieved before the plan
        else:
            found = await asyncio.to_thread(self.tools.retrieve, ev.query, st.mode, k, st.papers, vectors)
        st.found.append(found)
        hits = list(found.hits)
        if ev.round > 1:  # read on around the passage judged most relevant so far
            track = st.tracks[ev.index]
            best = next((hs[j.relevant[0] - 1] for _, hs, j in reversed(track.rounds) if j and j.relevant), None)
            if best is not None:
                near = await asyncio.to_thread(self.tools.neighbours, best)
                seen = {h.chunk.id for _, hs, _ in track.rounds for h in hs}
                near = [h for h in near if h.chunk.id not in seen][:NEIGHBOURS_PER_ROUND]
                if near:
                    self.emit(ctx, "search", f"reading the passages around [{best.chunk.arxiv_id}, {best.chunk.pages_label}]")
                hits = _dedupe([*hits[:k - len(near)], *near])
        st.add_time("retrieve_s", time.perf_counter() - t0)
        for h in hits:
            if sanitize_passage(h.chunk.text)[1] and h.chunk.id not in st.sanitized:
                st.sanitized.append(h.chunk.id)
        self.emit(ctx, "passages", f"{len(hits)} passages for: {ev.query}", hits)
        return Retrieved(index=ev.index, query=ev.query, round=ev.round, hits=hits)

    # --- 3. judge the evidence; maybe another round
    @step(num_workers=4)
    async def judge(self, ctx: Context, ev: Retrieved) -> SubQuery | Evidence:
        st = self.state
        track = st.tracks[ev.index]
        t0 = time.perf_counter()
        judgement = await judge_evidence(ev.query, ev.hits, self.llm, self.settings, st.budget)
        st.add_time("judge_s", time.perf_counter() - t0)
        track.rounds.append((ev.query, ev.hits, judgement))
        if judgement.failed:
            st.errors.append(judgement.failed)
        verdict = "enough" if judgement.enough else f"not enough ({judgement.missing or 'no reason given'})"
        self.emit(ctx, "status", f"evidence for '{ev.query}': {verdict}")
        if judgement.enough:
            return Evidence(index=ev.index)
        stop = self.stop_reason(track, judgement)
        if stop:
            self.emit(ctx, "status", f"no further search for '{track.query}': {stop}")
            return Evidence(index=ev.index)
        return SubQuery(index=ev.index, query=judgement.next_query, round=ev.round + 1)

    def stop_reason(self, track: Track, judgement: Judgement) -> str:
        """Guards against runaway loops: round and token caps, repeated or empty queries."""
        if len(track.rounds) >= self.settings.max_rounds:
            return f"{self.settings.max_rounds} rounds done"
        if self.state.budget.spent:
            return f"token budget ({self.settings.agent_token_budget}) spent"
        if not judgement.next_query:
            return "no new query"
        issued = [q for t in self.state.tracks for q in t.issued()]
        if near_duplicate(judgement.next_query, issued):
            return f"repeated query '{judgement.next_query}'"
        return ""

    # --- 4. gather the sub-queries' evidence into one pool
    @step
    async def gather(self, ctx: Context, ev: Evidence) -> Pooled | StopEvent | None:
        st = self.state
        if ctx.collect_events(ev, [Evidence] * len(st.tracks)) is None:
            return None
        lists = [t.ranked() for t in st.tracks]
        pool = _dedupe([h for i in range(max(map(len, lists), default=0)) for hs in lists if i < len(hs)
                        for h in [hs[i]]])[:self.settings.top_k]
        pool = [h.model_copy(update={"rank": i}) for i, h in enumerate(pool, start=1)]
        judged = [j for t in st.tracks for _, _, j in t.rounds if j is not None and not j.failed]
        if pool and self.judge_abstains and judged and not any(j.enough or j.relevant for j in judged):
            return StopEvent(result=self.builder(pool).abstain("the evidence judge found nothing relevant"))
        # The gate reads the question's own retrieval scores; a question in another language, its sub-queries'.
        english = mostly_english(st.question)
        own = [f for f in st.found if (f.query == st.question) == english] or st.found
        relevance = max((f.relevance for f in own), default=0.0)
        bm25_top = max((f.bm25_top for f in own), default=0.0)
        self.emit(ctx, "status", f"answering from {len(pool)} passages")
        return Pooled(retrieval=Retrieval(st.question, tuple(pool), relevance, bm25_top))

    # --- 5. the shared steps: evidence, gate, write, check, Answer
    @step
    async def answer(self, ctx: Context, ev: Pooled) -> StopEvent:
        st = self.state
        answer: Answer | None = None
        events = aiter_in_thread(lambda: self.answerer.stream(st.question, ev.retrieval, st.queries(), st.timings,
                                                               self.run_settings(), routed=st.routed))
        async for event in events:
            if event.kind == "answer":
                answer = event.answer
            else:
                ctx.write_event_to_stream(Emit(ask=event))
        assert answer is not None
        missing = [t.query for t in st.tracks[1:] if not t.enough()] if st.plan and st.plan.decomposed else []
        update: dict = {"timings": self.timings(), "prompt": self.prompt}
        if missing and not answer.abstained and any(t.enough() for t in st.tracks):
            update["text"] = answer.text + " The indexed papers do not appear to cover: " + "; ".join(missing) + "."
            update["settings"] = {**answer.settings, "missing": missing}
        return StopEvent(result=answer.model_copy(update=update))

    # --- provenance
    @property
    def prompt(self) -> str:
        return "+".join((*PROMPTS, self.answerer.prompt))

    def run_settings(self, **extra) -> dict:
        st, s = self.state, self.settings
        plan = st.plan
        return self.answerer.provenance(
            "agentic", mode=st.mode, relevance=round(max((f.relevance for f in st.found), default=0.0), 4),
            hyde=st.use_hyde, max_rounds=s.max_rounds, max_subqueries=s.max_subqueries,
            agent_token_budget=s.agent_token_budget, unsupported=s.unsupported, papers=st.papers or [],
            routed_to=st.papers[0] if st.routed and st.papers else None,
            plan={"queries": plan.queries, "decomposed": plan.decomposed, "paper_names": plan.paper_names,
                  "fallback": plan.fallback} if plan else None,
            hyde_passages=st.hyde.passages if st.hyde else [],
            rounds=[{"sub_query": t.query, "query": q, "passages": [h.chunk.id for h in hs],
                     "judgement": ({"enough": j.enough, "relevant": j.relevant, "missing": j.missing,
                                    "next_query": j.next_query, "failed": j.failed} if j else None)}
                    for t in st.tracks for q, hs, j in t.rounds],
            decision_calls=st.budget.calls, decision_tokens=st.budget.used,
            prompts={name: prompt_version(name, s.prompts_dir) for name in PROMPTS + (("hyde",) if st.use_hyde else ())},
            sanitized_passages=st.sanitized, errors=st.errors, **extra)

    def timings(self) -> dict[str, float]:
        return {**self.state.timings, "total_s": round(time.perf_counter() - self.state.start, 3)}

    def builder(self, hits: Sequence[Hit]) -> AnswerBuilder:
        """For the answers the loop itself gives (an empty index, nothing judged relevant, an error)."""
        return AnswerBuilder(self.state.question, hits, self.llm.model, self.prompt, self.state.queries(),
                             self.run_settings(), self.timings())


class Engine:
    """Entry point: Engine(retriever, llm, settings).stream(question) -> AskEvents, the last an answer."""

    def __init__(self, retriever, llm: LLM, settings: Settings, judge_abstains: bool = True):
        self.tools = Tools(retriever, settings)
        self.llm, self.settings = llm, settings
        self.judge_abstains = judge_abstains

    async def astream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
                      hyde: bool | None = None) -> AsyncIterator[AskEvent]:
        question = clean_question(question)
        state = RunState(question=question, papers=list(papers) if papers else None,
                         mode=mode or self.settings.retrieval_mode,
                         use_hyde=self.settings.hyde if hyde is None else hyde,
                         budget=Budget(self.settings.agent_token_budget))
        answerer = Answerer.for_library(self.tools.library, self.llm, self.settings)
        wf = AgentWorkflow(self.tools, answerer, state, self.judge_abstains)
        handler = wf.run()
        answer: Answer | None = None
        try:
            async for ev in handler.stream_events():
                if isinstance(ev, Emit):
                    yield ev.ask
            answer = await handler
        except (RetrievalError, ValueError) as exc:
            yield AskEvent(kind="error", text=str(exc))
            answer = wf.builder(()).abstain(f"error: {exc}")
        except Exception as exc:  # a bug or a dead server in a step: say what happened
            cause = exc.__cause__ or exc
            yield AskEvent(kind="error", text=f"the engine stopped: {type(cause).__name__}: {cause}")
            answer = wf.builder(()).abstain(f"the engine stopped: {type(cause).__name__}: {cause}")
            answer = answer.model_copy(update={"text": f"No answer: {cause}", "abstained": False, "partial": True,
                                               "error": f"{type(cause).__name__}: {cause}"})
        finally:
            answerer.close()
        yield AskEvent(kind="answer", answer=answer)

    def stream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
               hyde: bool | None = None) -> Iterator[AskEvent]:
        """Sync twin: the workflow runs on its own loop in a thread; events arrive as they happen."""
        question = clean_question(question)  # bad input fails here, in the caller's thread
        return iter_in_thread(lambda: self.astream(question, papers, mode, hyde), name="agent-engine")

    def ask(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
            hyde: bool | None = None) -> Answer:
        answer = None
        for event in self.stream(question, papers, mode, hyde):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer
