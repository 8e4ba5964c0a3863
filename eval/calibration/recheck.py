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
    for line in (run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out = r.get("output")
        if not out or out["abstained"]:
            continue
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
    parser.add_argument("--direct", metavar="LLM_URL", help="Also re-check the recorded direct answers with this server")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = parser.parse_args()
    titles = {m["arxiv_id"]: m.get("title") or "" for m in json.loads(MANIFEST.read_text())} if MANIFEST.exists() else {}
    for run in args.runs:
        print(json.dumps(recheck(run, titles), indent=1))
        if args.direct:
            print(json.dumps(recheck_direct(run, titles, args.direct, args.model), indent=1))



def recheck_direct(run: Path, titles: dict[str, str], llm_url: str, model: str) -> dict:
    """The direct answers recorded in a run's drafts, checked again by today's support checker (the question's
    names and terms given, as engine/answer.py does): how many would be shown now. Calls the model for P(Yes)."""
    from assistant.engine.support import SupportChecker
    from assistant.engine.write import one_sentence
    from assistant.llm.client import OpenAICompatibleLLM
    from foundation.config import Settings

    checker = SupportChecker(OpenAICompatibleLLM(llm_url, model), Settings())
    written = shown = answered = 0
    seen = set()
    for line in (run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out = r.get("output")
        if not out or out["abstained"] or r["qid"] in seen:
            continue
        seen.add(r["qid"])
        answered += 1
        draft = out["detail"]["settings"].get("draft", "")
        sentence = one_sentence(draft.split("\n", 1)[1]) if "\n" in draft else ""
        if not sentence:
            continue
        written += 1
        cites = [c for c in out["detail"].get("citations", []) if 0 < c["n"] <= len(out["sources"])]
        picked = " ".join(out["sources"][c["n"] - 1] for c in cites)
        given = f"{titles.get(cites[0]['arxiv_id'], '') if cites else ''} {r['question']}"
        shown += bool(checker.check(sentence, picked, given).supported)
    checker.close()
    return {"run": str(run), "answered": answered, "direct answer written (complete sentence)": written,
            "passes the check now": shown}


if __name__ == "__main__":
    main()
