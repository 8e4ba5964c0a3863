"""Gold-set loading: the shared dev set, user datasets, and clear errors with line numbers."""
from __future__ import annotations

import json

import pytest

from eval.datasets import DatasetError, load_dataset, load_scoring_records
from tests.conftest import DEV_SET


def test_dev_set_loads():
    items = load_dataset(DEV_SET)
    assert len(items) == 48
    assert sum(not i.answerable for i in items) == 8
    assert all(i.evidence and i.arxiv_id for i in items if i.answerable)


def test_user_dataset_minimal_fields(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"question": "What is X?", "answer": "Y", "evidence": "X is Y", "source": "me"}) + "\n\n"
                    + json.dumps({"question": "Unknowable?"}) + "\n")
    a, b = load_dataset(path)
    assert a.id == "line1" and a.evidence == ("X is Y",) and a.extra == {"source": "me"}
    assert b.kind == "unanswerable" and not b.answerable


@pytest.mark.parametrize("line, message", [
    ('{"question": "q", "answer": "a"', "not valid JSON"),
    ('["q"]', "expected a JSON object"),
    ('{"answer": "a"}', "question"),
    ('{"question": "q", "answer": "a", "evidence": ["e"], "pages": [1, 2]}', "pages has 2"),
    ('{"question": "q", "kind": "unanswerable", "answer": "a"}', "no answer"),
])
def test_malformed_line_names_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "ok", "question": "fine", "answer": "yes"}) + "\n" + line + "\n")
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert ":2:" in str(err.value) and message in str(err.value)


def test_duplicate_ids(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "question": "q"}\n{"id": "a", "question": "r"}\n')
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        load_dataset(path)


def test_scoring_records(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a.", "passages": ["p1", {"text": "p2"}]}) + "\n"
                    + json.dumps({"answer": "b"}) + "\n")
    with pytest.raises(DatasetError, match=":2:.*passages"):
        load_scoring_records(path)
    path.write_text(json.dumps({"question": "q", "answer": "a.", "passages": ["p1", {"text": "p2"}]}) + "\n")
    assert load_scoring_records(path)[0].passages == ("p1", "p2")
