"""The agentic engine: a llama-index Workflow of typed steps.

    StartEvent -> plan (+ HyDE, concurrently) -> SubQuery x n -> retrieve -> Judge -> judge
        judge -> SubQuery (another round: new query + neighbouring passages) | Evidence
    Evidence x n -> gather (merge passages, relevance gate) -> Draft | StopEvent (abstain)
    Draft -> answer (streamed [n] answer) -> Written -> verify -> StopEvent(Answer)

Independent sub-queries run in concurrent workers (vLLM batches their judge calls), and so do the
verification calls. Every step reports what it does as AskEvents (plan, search, passages, token,
verify, status, error, answer) through the workflow's event stream. Nothing here crashes on a bad
model reply: unusable JSON is retried once and then a fallback is taken (assistant.llm.structured.ask_json).

Backends: the engine needs only the LLM protocol (complete with json_schema, stream; acomplete /
astream used when present). The default is the OpenAI-compatible client to vLLM. An in-process
`vllm.LLM` backend (batch work) must live in the vLLM virtualenv (.venv-vllm), which cannot hold
colbert-ai: wrap `LLM.generate`/`LLM.chat` with `SamplingParams(structured_outputs=
StructuredOutputsParams(json=schema))` in a class with `model`, `complete` and `stream`, and run the
batch script (e.g. bench/agentic.py with dense retrieval) from that environment.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Iterator, Sequence

from llama_index.core.workflow import Context, Event, StartEvent, StopEvent, Workflow, step

from assistant.engine.answer import ABSTAIN_TEXT, clean_question, looks_like_abstention
from foundation.text import markers_in
from assistant.engine.cite import attach_citations
from foundation.config import Settings
from assistant.engine.agent.state import RunState, Track, _dedupe
from foundation.prompts import prompt_version
from foundation.threads import iter_in_thread
from assistant.engine.agent.tools import Tools, near_duplicate
from assistant.engine.passages import answer_messages, sanitize_passage
from assistant.llm.structured import Budget, astream
from assistant.engine.hyde import ahyde
from assistant.llm.protocol import LLM, LLMError
from assistant.engine.agent.plan import Judgement, judge_evidence, make_plan, mostly_english
from assistant.engine.retrieve import RetrievalError
from foundation.types import Answer, AskEvent, Hit
from assistant.engine.verify import averify

PROMPTS = ("plan", "judge_evidence", "answer_system", "answer_user", "passage", "verify_system", "verify")
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


class Draft(Event):
    hits: list[Hit]


class Written(Event):
    hits: list[Hit]
    raw: str
    error: str = ""


class AgentWorkflow(Workflow):
    """One run per instance: the run's state lives on the instance, steps share one event loop."""

    def __init__(self, tools: Tools, llm: LLM, settings: Settings, embedder, state: RunState,
                 judge_abstains: bool = True):
        super().__init__(timeout=None)
        self.tools, self.llm, self.settings, self.embedder, self.state = tools, llm, settings, embedder, state
        self.judge_abstains = judge_abstains

    def emit(self, ctx: Context, kind: str, text: str = "", hits: Sequence[Hit] = (), answer: Answer | None = None):
        ctx.write_event_to_stream(Emit(ask=AskEvent(kind=kind, text=text, hits=tuple(hits), answer=answer)))

    # --- 1. plan (HyDE alongside)
    @step
    async def plan(self, ctx: Context, ev: StartEvent) -> SubQuery | StopEvent | None:
        st = self.state
        if self.tools.is_empty():
            self.emit(ctx, "error", "the index is empty: ingest papers first (paper-assistant ingest ...)")
            return StopEvent(result=self.abstain("empty index", []))
        # A question far from every passage is answered "no" before any model call (English only:
        # the embedder is English, a question in another language is judged after translation).
        if mostly_english(st.question):
            st.relevance = await asyncio.to_thread(self.tools.relevance, st.question, st.papers)
            if st.relevance < self.settings.min_relevance:
                hits = await asyncio.to_thread(self.tools.search, st.question, st.mode, self.settings.top_k, st.papers)
                st.tracks = [Track(st.question, [(st.question, hits, None)])]
                return StopEvent(result=self.abstain(
                    f"best passage relevance {st.relevance:.2f} < {self.settings.min_relevance}", hits))
        self.emit(ctx, "plan", "planning")
        t0 = time.perf_counter()
        jobs = [make_plan(st.question, self.llm, self.settings, st.budget, self.tools)]
        if st.use_hyde:
            jobs.append(ahyde(st.question, self.llm, self.embedder, self.settings))
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
        hits = await asyncio.to_thread(self.tools.search, ev.query, st.mode, k, st.papers, vectors)
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

    # --- 4. gather the sub-queries' evidence; abstain or draft
    @step
    async def gather(self, ctx: Context, ev: Evidence) -> Draft | StopEvent | None:
        st = self.state
        if ctx.collect_events(ev, [Evidence] * len(st.tracks)) is None:
            return None
        lists = [t.ranked() for t in st.tracks]
        pool = _dedupe([h for i in range(max(map(len, lists), default=0)) for hs in lists if i < len(hs)
                        for h in [hs[i]]])[:self.settings.top_k]
        pool = [h.model_copy(update={"rank": i}) for i, h in enumerate(pool, start=1)]
        if not mostly_english(st.question):
            scores = await asyncio.gather(*(asyncio.to_thread(self.tools.relevance, q, st.papers)
                                            for q in st.plan.queries[1:] or [st.question]))
            st.relevance = max(scores, default=0.0)
            if st.relevance < self.settings.min_relevance:
                return StopEvent(result=self.abstain(
                    f"best passage relevance {st.relevance:.2f} < {self.settings.min_relevance}", pool))
        if not pool:
            return StopEvent(result=self.abstain("no passages found", pool))
        judged = [j for t in st.tracks for _, _, j in t.rounds if j is not None and not j.failed]
        if self.judge_abstains and judged and not any(j.enough or j.relevant for j in judged):
            return StopEvent(result=self.abstain("the evidence judge found nothing relevant", pool))
        self.emit(ctx, "passages", f"answering from {len(pool)} passages", pool)
        return Draft(hits=pool)

    # --- 5. answer, streamed
    @step
    async def answer(self, ctx: Context, ev: Draft) -> Written:
        st = self.state
        messages = answer_messages(st.question, ev.hits, self.settings)
        self.emit(ctx, "status", "writing the answer")
        t0 = time.perf_counter()
        error = ""
        try:
            async for piece in astream(self.llm, messages, max_tokens=self.settings.llm_max_tokens,
                                       temperature=self.settings.llm_temperature):
                if not st.tokens:
                    st.timings["first_token_s"] = round(time.perf_counter() - t0, 3)
                st.tokens.append(piece)
                self.emit(ctx, "token", piece)
        except LLMError as exc:
            error = str(exc)
            st.errors.append(f"answer: {exc}")
            self.emit(ctx, "error", f"generation stopped: {exc}")
        st.add_time("generate_s", time.perf_counter() - t0)
        return Written(hits=ev.hits, raw="".join(st.tokens).strip(), error=error)

    # --- 6. verify, then the final Answer (or an abstention)
    @step
    async def verify(self, ctx: Context, ev: Written) -> StopEvent:
        st, hits = self.state, ev.hits
        if not ev.raw:
            if ev.error:
                return StopEvent(result=self.final(f"The model server failed before answering: {ev.error}", hits,
                                                   partial=True))
            return StopEvent(result=self.abstain("the model wrote nothing", hits))
        if not ev.error and looks_like_abstention(ev.raw):
            return StopEvent(result=self.abstain("the model found no answer in the passages", hits, draft=ev.raw))
        invalid = [n for n in markers_in(ev.raw) if not 1 <= n <= len(hits)]
        text, _ = attach_citations(ev.raw, hits)
        self.emit(ctx, "verify", "checking each sentence against its passages")
        t0 = time.perf_counter()

        def on_verdict(c) -> None:
            mark = {True: "supported", False: "NOT supported", None: "unchecked"}[c.supported]
            self.emit(ctx, "verify", f"{mark}: {c.sentence[:80]} ({c.note})")

        checked = await averify(text, hits, self.llm, self.settings, st.budget, on_verdict)
        st.add_time("verify_s", time.perf_counter() - t0)
        extra = {"draft": ev.raw, "invalid_markers": invalid, "removed": checked.removed}
        if not ev.error and checked.verdicts and checked.n_supported == 0 and \
                any(v.supported is False for v in checked.verdicts):
            return StopEvent(result=self.abstain("no sentence of the draft is supported by its passages", hits,
                                                 verdicts=checked.verdicts, **extra))
        text = checked.text
        missing = [t.query for t in st.tracks[1:] if not t.enough()] if st.plan and st.plan.decomposed else []
        if missing and any(t.enough() for t in st.tracks):
            text += " The indexed papers do not appear to cover: " + "; ".join(missing) + "."
        if ev.error:
            text += " [answer cut short: the model server failed]"
        return StopEvent(result=self.final(text, hits, citations=checked.citations, verdicts=checked.verdicts,
                                           partial=bool(ev.error), missing=missing, **extra))

    # --- building the Answer with its provenance
    def run_settings(self, **extra) -> dict:
        st, s = self.state, self.settings
        plan = st.plan
        return {
            "engine": "agentic", "mode": st.mode, "top_k": s.top_k, "min_relevance": s.min_relevance,
            "relevance": round(st.relevance, 4), "hyde": st.use_hyde, "max_rounds": s.max_rounds,
            "max_subqueries": s.max_subqueries, "agent_token_budget": s.agent_token_budget,
            "unsupported": s.unsupported, "papers": st.papers or [],
            "plan": {"queries": plan.queries, "decomposed": plan.decomposed, "paper_names": plan.paper_names,
                     "fallback": plan.fallback} if plan else None,
            "hyde_passages": st.hyde.passages if st.hyde else [],
            "rounds": [{"sub_query": t.query, "query": q, "passages": [h.chunk.id for h in hs],
                        "judgement": ({"enough": j.enough, "relevant": j.relevant, "missing": j.missing,
                                       "next_query": j.next_query, "failed": j.failed} if j else None)}
                       for t in st.tracks for q, hs, j in t.rounds],
            "decision_calls": st.budget.calls, "decision_tokens": st.budget.used,
            "prompts": {name: prompt_version(name, s.prompts_dir) for name in PROMPTS + (("hyde",) if st.use_hyde else ())},
            "sanitized_passages": st.sanitized, "errors": st.errors, **extra,
        }

    def timings(self) -> dict[str, float]:
        return {**self.state.timings, "total_s": round(time.perf_counter() - self.state.start, 3)}

    def abstain(self, reason: str, hits: Sequence[Hit], verdicts=(), **extra) -> Answer:
        return Answer(question=self.state.question, text=ABSTAIN_TEXT, abstained=True, passages=tuple(hits),
                      model=self.llm.model, prompt="+".join(PROMPTS), queries=self.state.queries(),
                      verdicts=tuple(verdicts), settings=self.run_settings(abstain_reason=reason, **extra),
                      timings=self.timings())

    def final(self, text: str, hits: Sequence[Hit], citations=(), verdicts=(), partial=False, **extra) -> Answer:
        return Answer(question=self.state.question, text=text, citations=tuple(citations), passages=tuple(hits),
                      model=self.llm.model, prompt="+".join(PROMPTS), queries=self.state.queries(),
                      verdicts=tuple(verdicts), settings=self.run_settings(**extra), timings=self.timings(),
                      partial=partial)


class Engine:
    """Entry point: Engine(retriever, llm, settings, embedder).stream(question) -> AskEvents, the last an answer."""

    def __init__(self, retriever, llm: LLM, settings: Settings, embedder=None, judge_abstains: bool = True):
        self.tools = Tools(retriever, settings)
        self.llm, self.settings = llm, settings
        self.embedder = embedder or retriever.library.embedder
        self.judge_abstains = judge_abstains

    async def astream(self, question: str, papers: Sequence[str] | None = None, mode: str | None = None,
                      hyde: bool | None = None) -> AsyncIterator[AskEvent]:
        question = clean_question(question)
        state = RunState(question=question, papers=list(papers) if papers else None,
                         mode=mode or self.settings.retrieval_mode,
                         use_hyde=self.settings.hyde if hyde is None else hyde,
                         budget=Budget(self.settings.agent_token_budget))
        wf = AgentWorkflow(self.tools, self.llm, self.settings, self.embedder, state, self.judge_abstains)
        handler = wf.run()
        answer: Answer | None = None
        try:
            async for ev in handler.stream_events():
                if isinstance(ev, Emit):
                    yield ev.ask
            answer = await handler
        except (RetrievalError, ValueError) as exc:
            yield AskEvent(kind="error", text=str(exc))
            answer = wf.abstain(f"error: {exc}", [])
        except Exception as exc:  # a bug or a dead server in a step: keep what was written, say what happened
            cause = exc.__cause__ or exc
            yield AskEvent(kind="error", text=f"the engine stopped: {type(cause).__name__}: {cause}")
            text = "".join(state.tokens).strip()
            answer = wf.final((text + " [answer cut short]") if text else f"No answer: {cause}", [],
                              partial=True, error=f"{type(cause).__name__}: {cause}")
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
