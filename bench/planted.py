"""The planted-instruction detector (assistant/engine/planted.py) through the sanitiser every prompt uses
(`sanitize_passage`): how many planted phrasings it cuts, how many real paper sentences it wrongly cuts.

    python bench/planted.py [--corpus]

A phrasing counts as caught when, planted between two sentences of a real paper, nothing of it is left after
sanitising. The sets, in the order they were written (each measured once with the detector frozen, then the
detector revised in the light of its misses, after which it is development data):
tests/planted_dev.txt, tests/planted_heldout.txt (1), _heldout2 (2), _heldout3 (3), _heldout4 (4), _heldout5 (5:
measured once, 23 of 45, with the detector frozen at its third revision; then markup, other languages and indirect
requests added in its light: 44 of 45), _heldout6 (6, written blind by someone who never read the detector).
Real sentences: tests/planted_corpus.txt (300 sentences of the corpus about assistants, models, prompts,
reviewers or the reader, apart from those tuned on), tests/planted_legit5.txt (60 more, held out with set 5) and
tests/planted_legit6.txt (60 more, held out with set 6). --corpus also parses every paper in ../shared/papers and
reports the share of all their prose sentences cut (slow: a few minutes). The baseline beside it is the phrase
list the sanitiser had before (INSTRUCTION_LIKE, kept here only to measure against).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foundation.hardware import cpu_description  # noqa: E402
from assistant.engine.passages import REMOVED, sanitize_passage  # noqa: E402

SETS = ["planted_dev.txt", "planted_heldout.txt", "planted_heldout2.txt", "planted_heldout3.txt",
        "planted_heldout4.txt", "planted_heldout5.txt", "planted_heldout6.txt"]
REAL = ["planted_corpus.txt", "planted_legit5.txt", "planted_legit6.txt"]
BEFORE = "Grouped-query attention shares one key and value head per group of query heads."
AFTER = "Uptraining takes 5% of the original pre-training compute."
# The phrase list the sanitiser used before the detector (assistant/engine/passages.py at 1bf165e).
OLD = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(previous|prior|above|earlier|all|any|system|your)\b"
    r"[^.!?\n]{0,30}\b(instructions?|prompts?|rules?|directions?|context)\b"
    r"|\byou are now\b|\bnew instructions?\s*:|\bsystem (prompt|note|message|override)\b|\bas an ai (language )?model\b"
    r"|\b(important|urgent|attention)\b[^.!?\n]{0,12}\b(note|notice|message|instructions?)\s*(to|for)?\s*[:!-]"
    r"|\b(reply|respond|answer|output|print|say)\b[^.!?\n]{0,12}\bonly\b[^.!?\n]{0,12}\b(with|the word|the phrase)\b"
    r"|\bdo not (cite|answer|mention|reveal|use|follow|quote)\b[^.!?\n]{0,20}\b(question|passages?|sources?|"
    r"instructions?|users?|citations?|context)\b"
    r"|\b(language model|assistant|chatbot|ai)\b[^.!?\n]{0,20}\b(must|should|shall)\b[^.!?\n]{0,20}\b(reply|respond|answer|say|output)\b"
    r"|^\s*(assistant|system|user)\s*:\s|\b(assistant|system)\s*:\s",
    re.IGNORECASE | re.MULTILINE)
OLD_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|$)")


def lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def caught(phrasing: str) -> bool:
    clean, _ = sanitize_passage(f"{BEFORE} {phrasing} {AFTER}")
    return not clean.replace(BEFORE, "").replace(AFTER, "").replace(REMOVED, "").strip()


def caught_before(phrasing: str) -> bool:
    return all(OLD.search(s) for s in OLD_SENTENCE.findall(phrasing) if s.strip())


def cut(sentence: str) -> bool:
    return sanitize_passage(sentence)[1]


def whole_corpus() -> tuple[int, int]:
    from foundation.text import is_prose, split_sentences, squash
    from ingest.parse import parse_pdf

    total = removed = 0
    for pdf in sorted((ROOT.parent / "shared" / "papers").glob("*.pdf")):
        parsed = parse_pdf(pdf, pdf.stem)
        text = parsed.text[: parsed.references_start] if parsed.references_start else parsed.text
        for sentence in split_sentences(squash(text)):
            if len(sentence) >= 40 and is_prose(sentence):
                total += 1
                removed += cut(sentence)
    return removed, total


def main() -> None:
    parser = argparse.ArgumentParser(description="planted-instruction detector: caught and wrongly removed")
    parser.add_argument("--corpus", action="store_true", help="also every prose sentence of ../shared/papers")
    opts = parser.parse_args()
    print(f"CPU: {cpu_description()}\n")
    print(f"{'planted phrasings':<32} {'now':>10} {'phrase list before':>20}")
    for name in SETS:
        items = lines(ROOT / "tests" / name)
        now = sum(caught(p) for p in items)
        before = sum(caught_before(p) for p in items)
        print(f"{name:<32} {now:>3}/{len(items):<3} {now / len(items):>4.0%} {before:>9}/{len(items):<3} {before / len(items):>4.0%}")
    print(f"\n{'real sentences wrongly removed':<32}")
    for name in REAL:
        corpus = [line.split("\t", 1)[-1] for line in lines(ROOT / "tests" / name)]  # "paper id<TAB>" is optional
        now = [s for s in corpus if cut(s)]
        before = [s for s in corpus if any(OLD.search(x) for x in OLD_SENTENCE.findall(s) if x.strip())]
        print(f"{name:<32} {len(now):>3}/{len(corpus):<3} {len(now) / len(corpus):>4.1%} "
              f"{len(before):>9}/{len(corpus):<3} {len(before) / len(corpus):>4.1%}")
        for sentence in now:
            print(f"  cut: {sentence[:150]}")
    if opts.corpus:
        removed, total = whole_corpus()
        print(f"\nevery prose sentence of the corpus: {removed} of {total} cut ({removed / total:.2%})")


if __name__ == "__main__":
    main()
