"""The hand-checked question sets (eval/one_paper, stated, unstated) and their checker, on real PDFs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.check_sets import DEFAULT_FILES, Checker, Corpus, name_pattern, numbers
from eval.datasets import load_dataset
from tests.conftest import SMALL_IDS, make_mirror


def records(name: str) -> list[dict]:
    path = next(p for p in DEFAULT_FILES if p.stem == name)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_sets_load_with_the_sizes_and_kinds_promised():
    one_paper, stated, unstated = (load_dataset(p) for p in DEFAULT_FILES)
    answerable = [i for i in one_paper if i.answerable]
    assert len(answerable) >= 24 and {i.kind for i in answerable} <= {"why", "how"}
    assert len({i.arxiv_id for i in answerable}) >= 12
    assert len(one_paper) - len(answerable) >= 5
    assert len(stated) >= 40 and all(i.answerable and i.evidence for i in stated)
    assert len(unstated) >= 40 and not any(i.answerable or i.arxiv_id for i in unstated)
    assert all(i.extra["mentions"] and i.why_unanswerable for i in unstated)


def test_name_pattern_matches_whole_names_only():
    gpt3 = name_pattern(["GPT-3"])
    assert gpt3.search("trained GPT-3 175B") and gpt3.search("the GPT-3-175B run") and gpt3.search("than GPT-3.")
    assert not gpt3.search("GPT-3.5 Turbo") and not gpt3.search("GPT-30") and not gpt3.search("InstructGPT-3")
    assert not name_pattern(["OPT"]).search("we opt to use OPTIMUS")


def test_numbers_ignore_digits_inside_names_and_join_thousands():
    assert numbers("roughly 10, 000 GPUs on A100s, 502 tons of CO2eq") == {"10000", "502"}
    assert numbers("3.5 days with GPT-4") == {"3.5"}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return Corpus(make_mirror(tmp_path_factory.mktemp("sets") / "mirror", SMALL_IDS))


def test_checker_passes_the_sets_records_on_their_papers(small_corpus, tmp_path):
    rows = [r for r in records("one_paper") if r.get("arxiv_id") in SMALL_IDS]
    assert rows, "the one-paper set has questions on the small test papers"
    stated = [r for r in records("stated") if r["arxiv_id"] in SMALL_IDS]
    for r in stated:  # mentions are over the whole corpus; here, over the two papers
        r["mentions"] = small_corpus.mentions([r["entity"], *r.get("aliases", [])])
    checker = Checker(small_corpus)
    checker.check_file(write(tmp_path / "one_paper.jsonl", rows))
    checker.check_file(write(tmp_path / "stated.jsonl", stated))
    assert checker.errors == []


def test_checker_catches_altered_evidence_wrong_pages_and_numbers(small_corpus, tmp_path):
    good = next(r for r in records("stated") if r["arxiv_id"] in SMALL_IDS)
    good["mentions"] = small_corpus.mentions([good["entity"]])
    altered = dict(good, id="altered", evidence=[good["evidence"][0].replace("V100", "A100")])
    moved = dict(good, id="moved", pages=[good["pages"][0] + 1])
    misquoted = dict(good, id="misquoted", answer=good["answer"] + " (2048 GPUs)")
    unmentioned = dict(good, id="unmentioned", mentions=["2305.13245"])
    checker = Checker(small_corpus)
    checker.check_file(write(tmp_path / "stated.jsonl", [good, altered, moved, misquoted, unmentioned]))
    failed = {e.split(":")[1] for e in checker.errors}
    assert failed == {"altered", "moved", "misquoted", "unmentioned"}, checker.errors


def test_checker_flags_a_question_naming_its_paper_and_a_changed_near_hit_count(small_corpus, tmp_path):
    named = {"id": "named", "question": "Why does RoBERTa: A Robustly Optimized BERT Pretraining Approach drop NSP?",
             "answer": None, "kind": "unanswerable", "why_unanswerable": "test", "about": "1907.11692"}
    unstated = {"id": "stale", "question": "How much did RoBERTa cost?", "answer": None, "kind": "unanswerable",
                "why_unanswerable": "test", "entity": "RoBERTa", "mentions": small_corpus.mentions(["RoBERTa"]),
                "unit": ".", "near_hits": 0}
    checker = Checker(small_corpus)
    checker.check_file(write(tmp_path / "one_paper.jsonl", [named]))
    checker.check_file(write(tmp_path / "unstated.jsonl", [unstated]))
    assert any("named" in e and "names its paper" in e for e in checker.errors), checker.errors
    assert any("stale" in e and "near hits" in e for e in checker.errors), checker.errors
