"""Declines and direct answers, read from eval runs (`paper-assistant eval run ... --out DIR`), judge-free.

    python -m eval.calibration.declines DIR [DIR ...] [--markdown]

Per run: answerable questions declined, unanswerable ones declined (the hidden sets' failure class is
eval/unstated.jsonl, its answerable twins eval/stated.jsonl), why each decline happened (the gate, the model's
"[0]", the check of what the question asks for), the direct answer's presence among answered questions, the
words shown before the quotes, whether markers start at [1], and whether the gold paper is cited.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter
from pathlib import Path


def records(run: Path) -> list[dict]:
    rows = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if r.get("output"):
            rows[(r["config"], r["qid"])] = r
    return list(rows.values())


def decline_kind(r: dict) -> str:
    reason = r["output"]["detail"]["settings"].get("abstain_reason", "")
    if reason.startswith("P(answerable)") or reason.startswith("best passage relevance"):
        return "gate"
    if reason == "the model found no quote that answers":
        return "pick [0]"
    if reason.startswith("the quotes"):
        return "asks check"
    return reason[:40] or "other"


def summary(run: Path) -> dict:
    rows = records(run)
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["output"]["abstained"]]
    direct = [r for r in answered if r["output"]["detail"].get("direct_answer") or _direct_shown(r)]
    tried = [r for r in answered if any(v.get("note", "").startswith("direct answer")
                                        for v in r["output"]["detail"].get("verdicts", []))]
    before_quotes = [len(_head(r["output"]["answer"]).split()) for r in answered]
    first_marker = [_first_marker(r["output"]["answer"]) for r in answered]
    cited_paper = [r for r in answered if r.get("gold_arxiv_id") and any(
        c.get("arxiv_id") == r["gold_arxiv_id"] for c in r["output"]["detail"].get("citations", []))]
    with_gold = [r for r in answered if r.get("gold_arxiv_id")]
    return {
        "run": str(run), "questions": len(rows),
        "answerable declined": f"{len(answerable) - len(answered)} of {len(answerable)}",
        "unanswerable declined": f"{sum(r['output']['abstained'] for r in unanswerable)} of {len(unanswerable)}",
        "declines by step (answerable)": dict(Counter(decline_kind(r) for r in answerable if r["output"]["abstained"])),
        "declines by step (unanswerable)": dict(Counter(decline_kind(r) for r in unanswerable
                                                        if r["output"]["abstained"])),
        "direct answer shown (of answered)": f"{len(direct)} of {len(answered)}",
        "direct answer written, passed the check": f"{len(direct)} of {len(tried)}",
        "words before the quotes, median": statistics.median(before_quotes) if before_quotes else None,
        "answers whose first marker is [1]": f"{sum(m == 1 for m in first_marker)} of {len(first_marker)}",
        "gold paper cited (of answered)": f"{len(cited_paper)} of {len(with_gold)}",
    }


def _direct_shown(r: dict) -> bool:
    verdicts = r["output"]["detail"].get("verdicts", [])
    return bool(verdicts) and verdicts[0].get("note", "").startswith("direct answer") and verdicts[0].get("supported") \
        and r["output"]["answer"].startswith(verdicts[0]["sentence"][:20])


def _head(text: str) -> str:
    """What the answer says before its block of quotes: the direct answer, or the first quote when there is none."""
    head = text.split("\n\n", 1)[0]
    return head if not head.startswith("\u201c") else head.split("\u201d", 1)[0]


def _first_marker(text: str) -> int | None:
    m = re.search(r"\[(\d+)\]", text)
    return int(m.group(1)) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    for run in args.runs:
        print(json.dumps(summary(run), indent=1))


if __name__ == "__main__":
    main()
