"""Every setting out of range or of the wrong type is one line naming it (exit 2 from the CLI), never a
traceback or a silently odd run; an empty or read-only home is refused the same way."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing

import annotated_types as at
import pytest

from foundation.config import ENV_PREFIX, ConfigError, Settings, load_settings


def _bad_values(name: str) -> list[str]:
    """Environment values that `name` must refuse: one of the wrong type, and one out of its range."""
    field = Settings.model_fields[name]
    kind = typing.get_origin(field.annotation) or field.annotation
    args = typing.get_args(field.annotation)
    if field.annotation is bool:
        return ["maybe"]
    if field.annotation in (int, float) or int in args or float in args:
        bad = ["lots"]
        for rule in field.metadata:
            if isinstance(rule, at.Ge):
                bad.append(str(rule.ge - 1))
            elif isinstance(rule, at.Gt):
                bad.append(str(rule.gt))
            elif isinstance(rule, at.Le):
                bad.append(str(rule.le + 1))
            elif type(rule).__name__ == "AllowInfNan":
                bad.append("nan")
        return bad
    if kind is typing.Literal:
        return ["nonsense"]
    if kind in (list, dict):
        return ["not json", "[1, 2]" if kind is dict else '{"a": 1}']
    if name in ("home", "prompts_dir", "llm_model_path", "vllm_python", "mirror", "zotero_dir"):
        return [""]
    if name.endswith("_url"):
        return ["localhost:8000"]
    if name in ("embedder", "llm_model", "colbert_checkpoint", "pdf_glob"):
        return [""]
    if name == "collection":
        return ["a b"]
    if name == "pdf_viewer":
        return ["vim"]  # neither a known viewer nor a command with {path}
    return []


CHECKED = [(name, value) for name in Settings.model_fields for value in _bad_values(name)]


def test_every_field_is_checked():
    unchecked = {n for n in Settings.model_fields} - {n for n, _ in CHECKED} - {"llm_api_key", "zotero_collection"}
    assert not unchecked, f"fields with no bad value tried: {unchecked}"
    assert len(CHECKED) > 100


@pytest.mark.parametrize("name,value", CHECKED)
def test_a_bad_value_is_one_line_naming_the_field(name, value, monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    monkeypatch.setenv(ENV_PREFIX + "HOME", str(tmp_path))
    monkeypatch.setenv(ENV_PREFIX + name.upper(), value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and f"'{name}" in message and f"{ENV_PREFIX}{name.upper()}" in message, message


def test_related_fields_and_weights():
    with pytest.raises(ConfigError, match="'chunk_overlap': must be below chunk_tokens"):
        load_settings(home="/tmp/x", chunk_tokens=100, chunk_overlap=100)
    with pytest.raises(ConfigError, match="at least one weight must be above 0"):
        load_settings(home="/tmp/x", fusion_weights={"dense": 0, "bm25": 0})
    with pytest.raises(ConfigError, match="option -k"):
        load_settings(home="/tmp/x", search_k=-3)
    assert load_settings(home="/tmp/x", fusion_weights={"bm25": 1.0}).fusion_weights == {"bm25": 1.0}


def cli(*args: str, home, env: dict[str, str] | None = None, prefix: list[str] | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    clean.update(env or {})
    home_args = ["--home", str(home)] if home is not None else []
    return subprocess.run((prefix or []) + [sys.executable, "-m", "assistant", *home_args, "--offline", *args],
                          capture_output=True, text=True, timeout=300, env=clean)


@pytest.mark.parametrize("env,field", [
    ({"PAPER_ASSISTANT_TOP_K": "0"}, "top_k"),
    ({"PAPER_ASSISTANT_RRF_K": "-1"}, "rrf_k"),
    ({"PAPER_ASSISTANT_FUSION_WEIGHTS": "abc"}, "fusion_weights"),
    ({"PAPER_ASSISTANT_FUSION_WEIGHTS": '{"dense": -1, "bm25": 1}'}, "fusion_weights"),
    ({"PAPER_ASSISTANT_QUOTES_BUDGET_TOKENS": "-5"}, "quotes_budget_tokens"),
    ({"PAPER_ASSISTANT_HOME": ""}, "home"),
])
def test_the_cli_says_one_line_and_exits_2(tmp_path, env, field):
    home = None if "PAPER_ASSISTANT_HOME" in env else tmp_path / "home"
    done = cli("papers", home=home, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and f"'{field}" in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "index").exists() and not list(tmp_path.glob("*.sqlite"))


def test_search_k_below_one_is_refused(tmp_path):
    done = cli("search", "attention", "-k", "-3", home=tmp_path / "home")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "-k" in lines[0] and "greater than or equal to 1" in lines[0]


def test_an_empty_home_never_writes_into_the_current_directory(tmp_path):
    done = subprocess.run([sys.executable, "-m", "assistant", "--offline", "papers"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PAPER_ASSISTANT_HOME": "",
                                                       "PYTHONPATH": os.getcwd()})
    assert done.returncode == 2 and "'home': must not be empty" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) drops root's override of file modes")
def test_a_read_only_home_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "index").mkdir(parents=True)
    for path in (home / "index", home):
        path.chmod(0o555)
    # As root (the test machine) permissions are not enforced: run the CLI without that capability.
    as_user = [] if os.geteuid() else ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    try:
        for args in (["papers"], ["papers", "--json"], ["search", "attention"], ["doctor", "--json"]):
            done = cli(*args, home=home, prefix=as_user, env={"PAPER_ASSISTANT_INDEXES": json.dumps(["bm25"])})
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, (args, done.stderr[-2000:])
            assert "cannot write to" in lines[0] and "must be writable" in lines[0] and "Traceback" not in done.stderr
    finally:
        for path in (home, home / "index"):
            path.chmod(0o755)
