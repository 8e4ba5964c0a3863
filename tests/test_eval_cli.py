"""The eval CLI: retrieval-only recall on a real small index, and the standalone scorer with a scripted judge."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from assistant.cli.app import app
from tests.conftest import DEV_SET, SMALL_IDS


def test_eval_retrieval_json(mini_library_home, tmp_path):
    dataset = tmp_path / "small.jsonl"
    dataset.write_text("".join(line + "\n" for line in DEV_SET.read_text().splitlines()
                               if any(f'"{i}"' in line for i in SMALL_IDS)))
    result = CliRunner().invoke(app, ["--home", str(mini_library_home.home), "eval", "retrieval",
                                      "--dataset", str(dataset), "--mode", "dense", "-k", "10", "--json",
                                      "--out", str(tmp_path / "ranks.jsonl")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["dense"]
    assert summary["questions"] >= 2 and summary["paper_recall@10"] == 1.0
    assert 0.0 <= summary["evidence_recall@10"] <= 1.0
    assert len((tmp_path / "ranks.jsonl").read_text().splitlines()) == summary["questions"]


def test_eval_score_cli(tmp_path, monkeypatch):
    from foundation.config import PROJECT_ROOT
    from tests.fakes import ScriptedLLM
    from eval.judge import Judge

    judge = Judge(ScriptedLLM([{"verdict": "supported"}, {"verdict": "not supported"}]), PROJECT_ROOT / "prompts", workers=1)
    monkeypatch.setattr("assistant.cli.eval._judge", lambda *a, **k: judge)
    records = tmp_path / "answers.jsonl"
    records.write_text(json.dumps({"id": "r1", "question": "q", "answer": "Claim one [1]. Claim two.",
                                   "passages": ["Claim one holds."]}) + "\n")
    result = CliRunner().invoke(app, ["eval", "score", str(records), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["faithfulness"] == 0.5
    assert [s["supported"] for s in data["records"][0]["sentences"]] == [True, False]


def test_eval_run_rejects_bad_dataset(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "answer": "a"}\n{oops\n')
    result = CliRunner().invoke(app, ["eval", "run", "--dataset", str(bad), "--config", "eval/configs/default.toml"])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output
