"""The answerability calibration set: corpus-made questions in three conditions, with the gate's signals.

    python -m eval.calibration.build --home DIR [--llm-url URL --llm-model NAME] [--dev ../shared/eval/dev.jsonl]

For each question of questions.jsonl (eval/calibration/questions.py):
- answerable: asked of the whole library (label 1);
- scoped: the same question with retrieval limited to the other papers, which cannot answer it (label 0);
- swapped: its key name replaced by a model or method name the corpus never mentions (label 0).
With --llm-url the model's P(Yes) that the quotes answer is recorded too (one call per sample). The dev
set's questions are recorded the same way (condition "dev"), to check the fit on real questions.
Writes signals.jsonl next to this file; eval/calibration/fit.py fits the gate on it.
"""
from __future__ import annotations

import argparse
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assistant.api import Assistant
from foundation.config import load_settings
from foundation.text import names_in
from assistant.engine.evidence import EvidenceSelector
from assistant.engine.gate import evidence_signals
from assistant.engine.passages import gate_messages
from assistant.llm.client import OpenAICompatibleLLM

HERE = Path(__file__).parent
# Real model and method names; the ones the corpus mentions are dropped at run time.
UNSEEN = ("Gemini", "Claude", "Mixtral", "Zephyr", "Vicuna", "Falcon-40B", "Alpaca", "OLMo", "Phi-2", "StableLM",
          "Baichuan", "InternLM", "DeepSeek-V2", "Yi-34B", "Jamba", "Hyena", "Orca-2", "Dolly", "MPT-30B",
          "RWKV", "Griffin", "Gemma", "Llama-3", "Qwen-72B", "Starcoder", "Mistral-Large", "SOLAR", "Tulu-2")


def unseen_names(assistant: Assistant) -> list[str]:
    corpus = " ".join(c.text.lower() for c in assistant.library.store.iter_chunks(level=0))
    return [n for n in UNSEEN if n.lower() not in corpus and n.split("-")[0].lower() not in corpus]


def swap_name(question: str, names: list[str], rng: random.Random) -> str | None:
    """The question with its most specific name (longest) replaced by an unseen one; None without a name."""
    found = sorted(names_in(question), key=len, reverse=True)
    for name in found:
        m = re.search(re.escape(name), question, re.I)
        if m:
            return question[:m.start()] + rng.choice(names) + question[m.end():]
    return None


class SignalRecorder:
    def __init__(self, assistant: Assistant, llm: OpenAICompatibleLLM | None):
        self.a, self.llm = assistant, llm
        bm25 = assistant.library.extra_indexes.get("bm25")
        self.idf = getattr(bm25, "idf", None)
        self.bm25 = bm25
        self.selector = EvidenceSelector(assistant.embedder.embed_tokens, self.idf)
        self.papers = sorted(assistant.library.ok_papers())

    def signals(self, question: str, exclude: str | None = None) -> dict:
        s = self.a.settings
        papers = [p for p in self.papers if p != exclude] if exclude else None
        hits = self.a.retriever.search(question, s.retrieval_mode, s.top_k, papers)
        relevance = self.a.retriever.relevance(question, papers)
        top = self.bm25.search(question, 1, papers) if self.bm25 else []
        scored = self.selector.score(question, hits)
        quotes = self.selector.select(question, hits, s.quotes_budget_tokens, scored=scored)
        f = scored.features
        sig = evidence_signals(question, quotes, self.idf, relevance, float(top[0][1]) if top else 0.0,
                               float(f["maxsim"].max()) if len(f) else 0.0, float(f["dense"].max()) if len(f) else 0.0)
        row = sig.as_dict()
        row["gate_messages"] = gate_messages(question, quotes, s) if quotes else None
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--llm-url")
    ap.add_argument("--llm-model")
    ap.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    ap.add_argument("--dev", type=Path, default=HERE.parent.parent.parent / "shared" / "eval" / "dev.jsonl")
    ap.add_argument("--out", type=Path, default=HERE / "signals.jsonl")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--limit", type=int, help="use the first N questions only (the P(Yes) calls dominate the time)")
    args = ap.parse_args()
    assistant = Assistant(load_settings(home=args.home, offline=True))
    llm = OpenAICompatibleLLM(args.llm_url, args.llm_model, timeout_s=600) if args.llm_url else None
    rec = SignalRecorder(assistant, llm)
    rng = random.Random(args.seed)
    names = unseen_names(assistant)
    jobs = []
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    for q in questions[:args.limit]:
        jobs.append(({"condition": "answerable", "label": 1}, q["question"], None, q))
        jobs.append(({"condition": "scoped", "label": 0}, q["question"], q["arxiv_id"], q))
        swapped = swap_name(q["question"], names, rng)
        if swapped:
            jobs.append(({"condition": "swapped", "label": 0}, swapped, None, q))
    if args.dev.exists():
        for item in (json.loads(line) for line in args.dev.read_text().splitlines() if line.strip()):
            jobs.append(({"condition": "dev", "label": int(bool(item.get("arxiv_id"))), "id": item["id"]},
                         item["question"], None, {"arxiv_id": item.get("arxiv_id")}))

    rows = [{**meta, "question": question, "arxiv_id": src.get("arxiv_id"), "source": src.get("chunk_id", ""),
             **rec.signals(question, exclude)}
            for meta, question, exclude, src in jobs]  # one thread: the embedder's tokenizer is not shareable

    def ask_gate(row: dict) -> None:
        messages = row.pop("gate_messages")
        if llm is not None and messages:
            row["p_yes"] = round(llm.yes_probability(messages), 4)

    with ThreadPoolExecutor(max_workers=4) as pool:  # the model server batches concurrent requests
        list(pool.map(ask_gate, rows))
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = {c: sum(r["condition"] == c for r in rows) for c in ("answerable", "scoped", "swapped", "dev")}
    print(f"{len(rows)} samples {counts} -> {args.out} (unseen names: {', '.join(names)})")


if __name__ == "__main__":
    main()
