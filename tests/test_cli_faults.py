"""Exit codes, `error` fields and failed rows through the real CLI (a subprocess), on one small real paper."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SMALL_IDS, make_mirror

ROBERTA, GQA = SMALL_IDS


def cli(*args: str, home, mirror=None, bm25_only: bool = True) -> subprocess.CompletedProcess:
    """The CLI on a tmp home, BM25 beside dense (what these checks need; ColBERT has tests/test_faults.py)."""
    base = [sys.executable, "-m", "assistant", "--home", str(home), "--offline"]
    if mirror:
        base += ["--mirror", str(mirror)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    if bm25_only:
        env["PAPER_ASSISTANT_INDEXES"] = '["bm25"]'
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.model  # the subprocess ingests with the real embedder
def test_ingest_exit_codes_and_failed_rows(tmp_path):
    home, mirror = tmp_path / "home", make_mirror(tmp_path / "mirror", [GQA])
    env_free = {"home": home, "mirror": mirror}

    everything_failed = cli("ingest", "2401.00001", "2401.00002", "--json", **env_free)
    assert everything_failed.returncode == 1
    out = json.loads(everything_failed.stdout)
    assert out["error"] == "all 2 papers failed" and out["ok"] == 0 and out["failed"] == 2

    empty_list = tmp_path / "list.md"
    empty_list.write_text("# reading list\nnothing yet\n")
    nothing = cli("ingest", str(empty_list), "--json", **env_free)
    assert nothing.returncode == 1
    out = json.loads(nothing.stdout)
    assert out["error"].startswith("nothing to ingest: no arXiv ids found") and out["failed"] == 0
    assert out["results"][0]["kind"] == "input"

    mixed = cli("ingest", str(empty_list), GQA, "2401.00003", **env_free)  # one paper ok: success
    assert mixed.returncode == 0, mixed.stderr
    assert "no arXiv ids found" in mixed.stdout and "1 failed" in mixed.stdout

    failed = json.loads(cli("papers", "--failed", "--json", **env_free).stdout)
    assert sorted(p["paper"]["arxiv_id"] for p in failed) == ["2401.00001", "2401.00002", "2401.00003"]
    assert all(p["status"] == "failed" and p["reason"] for p in failed)  # the list file is no failed paper
    assert cli("remove", **env_free).returncode == 2  # neither an id nor --failed
    cleared = cli("remove", "--failed", **env_free)
    assert cleared.returncode == 0 and "removed 3 failed papers" in cleared.stdout
    listed = json.loads(cli("papers", "--json", **env_free).stdout)
    assert [(p["paper"]["arxiv_id"], p["status"]) for p in listed] == [(GQA, "ok")]
    doctor = cli("doctor", "--json", **env_free)
    assert doctor.returncode == 0 and json.loads(doctor.stdout)["consistent"]


def test_malformed_config_is_one_line_naming_file_key_and_type(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    for text, expected in [('indexes = "[\'bm25\']"\n', "'indexes'"), ("top_k = 'many'\n", "'top_k'"),
                           ("no_such_key = 1\n", "unknown setting 'no_such_key'"), ("top_k = [\n", "not valid TOML")]:
        config.write_text(text)
        done = cli("papers", home=home, bm25_only=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert str(config) in lines[0] and expected in lines[0] and "Traceback" not in done.stderr, lines[0]


@pytest.mark.model
def test_search_with_invalid_utf8_is_no_traceback(tmp_path):
    home, mirror = tmp_path / "home", make_mirror(tmp_path / "mirror", [GQA])
    assert cli("ingest", GQA, home=home, mirror=mirror).returncode == 0
    query = os.fsdecode(b"grouped-query attention \xff\xfe heads")  # what argv holds for invalid UTF-8
    done = cli("search", query, "--json", home=home)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert json.loads(done.stdout)[0]["chunk"]["arxiv_id"] == GQA
