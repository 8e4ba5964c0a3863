"""The CLI as a user runs it: a real subprocess, JSON out, on real small papers."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SMALL_IDS

ROBERTA, GQA = SMALL_IDS


def cli(*args: str, home, mirror=None, **settings: str) -> subprocess.CompletedProcess:
    base = [sys.executable, "-m", "assistant", "--home", str(home), "--offline"]
    if mirror:
        base += ["--mirror", str(mirror)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({f"PAPER_ASSISTANT_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.model
@pytest.mark.colbert
def test_ingest_papers_search_remove_as_json(tmp_path, mini_mirror):
    reading_list = tmp_path / "list.md"
    reading_list.write_text(f"- [RoBERTa](https://arxiv.org/abs/{ROBERTA}v1)\n- GQA: arXiv:{GQA}\n- missing: arXiv:2401.00001\n")
    home = tmp_path / "home"
    done = cli("ingest", str(reading_list), "--json", home=home, mirror=mini_mirror)
    assert done.returncode == 0, done.stderr
    results = {r["arxiv_id"]: r for r in json.loads(done.stdout)["results"]}
    assert results[ROBERTA]["status"] == "ok" and results[GQA]["status"] == "ok"
    assert results["2401.00001"]["status"] == "failed"

    listed = json.loads(cli("papers", "--json", home=home).stdout)
    assert {p["paper"]["arxiv_id"]: p["status"] for p in listed} == {ROBERTA: "ok", GQA: "ok", "2401.00001": "failed"}

    hits = json.loads(cli("search", "static versus dynamic masking", "-k", "3", "--json", home=home).stdout)
    assert hits[0]["chunk"]["arxiv_id"] == ROBERTA and hits[0]["chunk"]["page_start"] >= 1

    for mode in ("bm25", "colbert", "hybrid"):  # ingest kept every index in step
        ranked = json.loads(cli("search", "static versus dynamic masking", "--mode", mode, "-k", "3", "--json",
                                home=home).stdout)
        assert ranked[0]["chunk"]["arxiv_id"] == ROBERTA, mode

    human = cli("search", "key-value heads", home=home)
    assert human.returncode == 0 and "arXiv:2305.13245" in human.stdout

    assert cli("remove", ROBERTA, home=home).returncode == 0
    assert cli("remove", ROBERTA, home=home).returncode == 1
    bad_mode = cli("search", "x", "--mode", "nonsense", home=home)
    assert bad_mode.returncode == 2 and "unknown retrieval mode" in bad_mode.stderr


def test_ask_exit_code_says_whether_an_answer_came(tmp_path, mini_library_home):
    """Exit 1 with an `error` field when the model cannot be reached; 0 for a real abstention."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(mini_library_home.home, home)
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    failed = cli("ask", "How does grouped-query attention share key and value heads?", "--json", home=home,
                 llm_base_url=dead, llm_model="qwen2.5-coder-0.5b-instruct")
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    reply = json.loads(failed.stdout)
    assert reply["error"] and reply["partial"]
    assert reply["extractive"] or not reply["text"]  # at most the papers' own words, quoted, in its place
    human = cli("ask", "How does grouped-query attention share key and value heads?", home=home,
                llm_base_url=dead, llm_model="qwen2.5-coder-0.5b-instruct")
    assert human.returncode == 1 and "Traceback" not in human.stderr + human.stdout
    declined = cli("ask", "What is the boiling point of liquid nitrogen at sea level?", "--json", home=home,
                   llm_base_url=dead, llm_model="qwen2.5-coder-0.5b-instruct")
    assert declined.returncode == 0, declined.stderr
    answer = json.loads(declined.stdout)
    assert answer["abstained"] and not answer["error"]
