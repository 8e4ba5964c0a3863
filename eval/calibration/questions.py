"""Questions made from the corpus itself, for calibrating the answerability gate.

    python -m eval.calibration.questions --home DIR --llm-url URL --llm-model NAME [--n 240] [--out FILE]

Each question is written by the local model from one prose sentence of one paper (the sentence that
answers it). Unanswerable twins are made later (eval/calibration/build.py): the same question asked with
retrieval scoped to the other papers, and the question with its key name swapped for one the corpus
never mentions.
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
from foundation.text import is_prose, names_in, numbers_in, overlap, sentence_spans, squash
from assistant.llm.client import OpenAICompatibleLLM

OUT = Path(__file__).with_name("questions.jsonl")
SYSTEM = "You write exam questions about scientific papers."
PROMPT = """Paper: "{title}"
Fact from the paper: "{sentence}"
Write a question about this paper that is answered by the fact above. The question must mention the specific terms of the fact. Question:"""
THE_PAPER = re.compile(r"\b(?:in|of|from|by) (?:the|this) (?:given )?paper\b|\bthe paper\b", re.I)


def source_sentences(assistant: Assistant, n: int, seed: int) -> list[dict]:
    """n fact-bearing prose sentences, spread over the papers (numbers or names make a checkable question)."""
    rng = random.Random(seed)
    by_paper: dict[str, list[dict]] = {}
    titles = {aid: p.title for aid, p in assistant.library.ok_papers().items()}
    for chunk in assistant.library.store.iter_chunks(level=0):
        for start, end in sentence_spans(chunk.text):
            raw = chunk.text[start:end]
            text = squash(raw)
            if re.match(r"^[A-Z]?\d+(?:\.\d+)*\.?\s+[A-Z]", text):  # starts with a section heading
                continue
            if not is_prose(raw) or not 12 <= len(text.split()) <= 45:
                continue
            if not (numbers_in(text) or names_in(text)):
                continue
            by_paper.setdefault(chunk.arxiv_id, []).append(
                {"arxiv_id": chunk.arxiv_id, "chunk_id": chunk.id, "sentence": text, "title": titles.get(chunk.arxiv_id, "")})
    papers = sorted(by_paper)
    picked = []
    while len(picked) < n and any(by_paper.values()):
        for aid in papers:
            if by_paper[aid] and len(picked) < n:
                picked.append(by_paper[aid].pop(rng.randrange(len(by_paper[aid]))))
    return picked


def write_question(llm: OpenAICompatibleLLM, item: dict) -> dict | None:
    reply = llm.complete([{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": PROMPT.format(title=item["title"], sentence=item["sentence"])}],
                         max_tokens=48, temperature=0.0)
    question = " ".join(reply.strip().strip('"').split())
    name = item["title"].split(":")[0].strip() if ":" in item["title"] else item["title"]
    question = THE_PAPER.sub(lambda m: f"in {name}" if m.group(0).lower() != "the paper" else name, question)
    question = re.sub(r"^(question|q)\s*:\s*", "", question, flags=re.I)
    if not question.endswith("?") or not 5 <= len(question.split()) <= 30:
        return None
    if overlap(question, item["sentence"]) > 0.8:  # a copy of the sentence, not a question about it
        return None
    return {**item, "question": question}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--llm-url", required=True)
    ap.add_argument("--llm-model", required=True)
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    assistant = Assistant(load_settings(home=args.home, offline=True))
    llm = OpenAICompatibleLLM(args.llm_url, args.llm_model, timeout_s=300)
    items = source_sentences(assistant, args.n, args.seed)
    with ThreadPoolExecutor(max_workers=4) as pool:  # vLLM batches concurrent requests
        made = [q for q in pool.map(lambda it: write_question(llm, it), items) if q]
    args.out.write_text("".join(json.dumps(q) + "\n" for q in made))
    print(f"{len(made)} questions from {len(items)} sentences -> {args.out}")


if __name__ == "__main__":
    main()
