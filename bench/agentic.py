"""Single-shot vs agentic answering, each with and without HyDE, over ../shared/eval/dev.jsonl.

Per configuration: evidence recall@10 of the passages the answer used, share of answer sentences
whose citation holds gold evidence, abstention on the unanswerable questions (and answering of the
answerable ones), median / p95 latency. Runs are resumable: every (config, question) answer is
appended to --out as JSON and skipped on the next run; --report-only prints the table from it.

    PAPER_ASSISTANT_HOME=/work/dev-home .venv/bin/python bench/agentic.py \
        --llm-url http://127.0.0.1:8800/v1 --model qwen2.5-coder-0.5b-instruct --answerable 16
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation.types import Answer  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from eval.metrics import claims_of, evidence_hit, retrieval_scores  # noqa: E402

CONFIGS = {"single": (False, False), "single+hyde": (False, True), "agentic": (True, False),
           "agentic+hyde": (True, True)}
DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "dev.jsonl"


def pick(items, answerable: int | None, ids: list[str] | None):
    if ids:
        return [q for q in items if q.id in ids]
    ans = [q for q in items if q.answerable]
    ans = ans[:answerable] if answerable is not None else ans
    unans = [q for q in items if not q.answerable]
    # alternate the two kinds so that a run cut short still has both
    mixed = [q for pair in zip(ans, unans) for q in pair]
    return mixed + ans[len(unans):] + unans[len(ans):]


def done_keys(out: Path) -> set[tuple[str, str]]:
    if not out.exists():
        return set()
    return {(r["config"], r["id"]) for r in map(json.loads, out.read_text().splitlines()) if r.get("answer")}


def run(args) -> None:
    from assistant.api import Assistant
    from foundation.config import load_settings

    overrides = {"llm_base_url": args.llm_url, "llm_model": args.model}
    if args.home:
        overrides["home"] = Path(args.home)
    assistant = Assistant(load_settings(**overrides))
    items = pick(load_dataset(args.dev), args.answerable, args.ids)
    configs = args.configs.split(",")
    done = done_keys(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{len(items)} questions x {len(configs)} configs -> {args.out} ({len(done)} done)", flush=True)
    for q in items:  # configs interleaved per question: a cut-short run still compares like with like
        for name in configs:
            if (name, q.id) in done:
                continue
            agentic, hyde = CONFIGS[name]
            start = time.perf_counter()
            record = {"config": name, "id": q.id}
            try:
                answer = assistant.ask(q.question, agentic=agentic, hyde=hyde)
                record["answer"] = json.loads(answer.model_dump_json())
            except Exception as exc:  # recorded, the run goes on
                record["error"] = f"{type(exc).__name__}: {exc}"
            record["seconds"] = round(time.perf_counter() - start, 3)
            with args.out.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            a = record.get("answer") or {}
            print(f"{q.id} {name:13s} {record['seconds']:6.1f}s abstained={a.get('abstained')} "
                  f"{(a.get('text') or record.get('error', ''))[:90]!r}", flush=True)
    assistant.close()


def cited_gold(answer: Answer, evidence) -> tuple[int, int]:
    """(sentences whose cited passages hold gold evidence, all sentences) of an answer. Markers point at quotes,
    each read with the whole passage it was taken from."""
    good = total = 0
    for _, markers in claims_of(answer.text):
        total += 1
        passages = [passage_of(answer, n) for n in markers]
        if any(p and evidence_hit(p, ev) for p in passages for ev in evidence):
            good += 1
    return good, total


def passage_of(answer: Answer, n: int) -> str:
    if answer.quotes:
        q = answer.quotes[n - 1] if 1 <= n <= len(answer.quotes) else None
        return answer.passages[q.passage - 1].chunk.text if q and 0 < q.passage <= len(answer.passages) else ""
    return answer.passages[n - 1].chunk.text if 1 <= n <= len(answer.passages) else ""


def pct(values, p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    i = min(len(values) - 1, max(0, round(p * (len(values) - 1))))
    return values[i]


def report(args) -> str:
    items = {q.id: q for q in load_dataset(args.dev)}
    rows: dict[str, dict[str, dict]] = {}
    for r in map(json.loads, args.out.read_text().splitlines()):
        rows.setdefault(r["config"], {})[r["id"]] = r
    # compare configurations on the questions every one of them finished
    common = set.intersection(*(set(k for k, r in v.items() if r.get("answer")) for v in rows.values()))
    lines = [f"questions: {len(common)} ({sum(items[i].answerable for i in common)} answerable, "
             f"{sum(not items[i].answerable for i in common)} unanswerable)", "",
             "| config | evidence recall@10 | answered (answerable) | sentences citing gold evidence | "
             "abstained (unanswerable) | latency median s | latency p95 s |",
             "|---|---|---|---|---|---|---|"]
    names = [c for c in CONFIGS if c in rows]
    for name in names:
        recalls, answered, good, total, abst, secs = [], [], 0, 0, [], []
        for qid in sorted(common):
            q, r = items[qid], rows[name][qid]
            answer = Answer.model_validate(r["answer"])
            secs.append(r["seconds"])
            if q.answerable:
                passages = [(h.chunk.arxiv_id, h.chunk.text) for h in answer.passages[:10]]
                recalls.append(retrieval_scores(q.arxiv_id, q.evidence, passages).evidence_recall(10))
                answered.append(not answer.abstained)
                if not answer.abstained:
                    g, t = cited_gold(answer, q.evidence)
                    good, total = good + g, total + t
            else:
                abst.append(answer.abstained)
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        lines.append(f"| {name} | {mean(recalls):.3f} | {sum(answered)}/{len(answered)} | "
                     f"{good}/{total} = {good / total if total else float('nan'):.2f} | {sum(abst)}/{len(abst)} | "
                     f"{statistics.median(secs):.1f} | {pct(secs, 0.95):.1f} |")
    errors = sum(1 for v in rows.values() for r in v.values() if r.get("error"))
    if errors:
        lines.append(f"\n{errors} runs ended in an error (see {args.out})")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev", type=Path, default=DEV)
    p.add_argument("--home", help="PAPER_ASSISTANT_HOME of the index to use (read only)")
    p.add_argument("--llm-url", default="http://127.0.0.1:8800/v1")
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--answerable", type=int, default=None, help="Only the first N answerable questions (all unanswerable)")
    p.add_argument("--ids", nargs="*", help="Only these question ids")
    p.add_argument("--out", type=Path, default=Path("bench/out/agentic.jsonl"))
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not args.report_only:
        run(args)
    print(report(args))


if __name__ == "__main__":
    main()
