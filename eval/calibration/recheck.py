"""The check of what a question asks for (engine/asks.py), re-applied to the picks recorded in eval runs: how a
change of the rule moves declines without generating again (the rule is code over the picked quotes).

    python -m eval.calibration.recheck DIR [DIR ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.engine.asks import several_parts, unanswered

MANIFEST = Path(__file__).resolve().parents[3] / "shared" / "papers" / "manifest.json"


def recheck(run: Path, titles: dict[str, str]) -> dict:
    answered = declined_now = 0
    examples = []
    answerable = None
    for line in (run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out = r.get("output")
        if not out or out["abstained"]:
            continue
        answerable = r["answerable"]
        answered += 1
        cites = out["detail"].get("citations", [])
        quotes = [out["sources"][c["n"] - 1] for c in cites if 0 < c["n"] <= len(out["sources"])]
        lacking = unanswered(r["question"], "\n".join(quotes), [titles.get(c["arxiv_id"], "") for c in cites])
        if lacking and not several_parts(r["question"]):
            declined_now += 1
            examples.append(f"{r['qid']}: {lacking}")
    return {"run": str(run), "answered before": answered, "declined by the check now": declined_now,
            "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    titles = {m["arxiv_id"]: m.get("title") or "" for m in json.loads(MANIFEST.read_text())} if MANIFEST.exists() else {}
    for run in args.runs:
        print(json.dumps(recheck(run, titles), indent=1))


if __name__ == "__main__":
    main()
