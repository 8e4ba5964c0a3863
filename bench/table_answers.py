"""Judge-free check of answers to questions whose answer is a number in a table (eval/tables.jsonl): does the
answer cite the paper at the table's page, and does it hold the gold number?

    python bench/table_answers.py --dataset eval/tables.jsonl --home /tmp/tables-home [--home OTHER ...] \
        [--llm-url http://127.0.0.1:8800/v1 --llm-model qwen2.5-coder-0.5b-instruct] [--json]

Each --home is an index (built with `python -m assistant ingest ...`); give the one built before table rows
were passages as the baseline, in the same run. Per question: answered (not declined), cites_page (a citation
of the gold paper whose pages hold the table's page), cites_table (a citation of the table's rows: section
"Table N"), number (the gold number in the answer's text, related quotes of a decline included), and both (answered,
cites_page and number).
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.api import Assistant  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402
from foundation.config import load_settings  # noqa: E402
from foundation.types import Answer  # noqa: E402

CHECKS = ("answered", "cites_page", "cites_table", "number", "both")


def gold_number(text: str) -> str:
    """The number a gold value starts with ("70.4" of "70.4±.1", "60.1" of "60.1%", "4e-4")."""
    m = re.match(r"\d+(?:\.\d+)?(?:e-?\d+)?", text)
    return m.group(0) if m else text


def holds_number(answer: str, number: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", answer) is not None


def check(answer: Answer, arxiv_id: str, page: int, table: str, number: str) -> dict[str, bool]:
    cited = [c for c in answer.citations if c.arxiv_id == arxiv_id]
    out = {
        "answered": not answer.abstained,
        "cites_page": any(c.page_start <= page <= c.page_end for c in cited),
        "cites_table": any(c.section == table for c in cited),
        "number": holds_number(answer.text, number),
    }
    out["both"] = out["answered"] and out["cites_page"] and out["number"]
    return out


def run(home: Path, items, overrides: dict) -> dict:
    assistant = Assistant(load_settings(home=home, **overrides))
    rows = []
    for item in items:
        start = time.perf_counter()
        answer = assistant.ask(item.question)
        seconds = time.perf_counter() - start
        number = gold_number(item.extra["gold_number"])
        result = check(answer, item.arxiv_id or "", item.pages[0], item.extra["table"], number)
        rows.append({"id": item.id, **result, "seconds": round(seconds, 1), "answer": answer.text})
    assistant.close()
    n = len(rows)
    totals = {k: sum(r[k] for r in rows) for k in CHECKS}
    return {"home": str(home), "questions": n, **totals, "rows": rows,
            "median_s": sorted(r["seconds"] for r in rows)[n // 2]}


def cpu() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("eval/tables.jsonl"))
    parser.add_argument("--home", type=Path, action="append", required=True)
    parser.add_argument("--llm-url")
    parser.add_argument("--llm-model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    overrides = {k: v for k, v in {"llm_base_url": args.llm_url, "llm_model": args.llm_model}.items() if v}
    items = [i for i in load_dataset(args.dataset) if i.answerable]
    results = [run(home, items, overrides) for home in args.home]
    if args.json:
        print(json.dumps({"cpu": cpu(), "results": results}, indent=2))
        return
    print(f"{len(items)} table questions, {cpu()}")
    for r in results:
        print(f"\n{r['home']}: " + ", ".join(f"{k} {r[k]}/{r['questions']}" for k in CHECKS)
              + f", median {r['median_s']} s")
        for row in r["rows"]:
            marks = " ".join(k for k in CHECKS if row[k])
            print(f"  {row['id']}: {marks or '-'} | {' '.join(row['answer'].split())[:140]}")


if __name__ == "__main__":
    main()
