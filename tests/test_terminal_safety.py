"""Data is never markup, and escape sequences never reach the terminal: a real PDF whose title, authors,
section heading and text carry `[/red]`, `[link=...]`, OSC 0 (window title), OSC 8 (hyperlink), `ESC[2J`
and colours, ingested through the real CLI from a mirror in a folder whose name carries them too; every
command prints it inert, with the right exit code. `--json` keeps the characters, escaped. The TUI shows
the same data inert."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.hostile_pdfs import text_pdf
from tests.misbehaving_llm import MODEL as LLM_MODEL

HOSTILE_ID = "2401.00077"
ESCAPES = "\x1b]0;PWNED\x07 \x1b[2J \x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x1b[31mred\x1b[0m"
TITLE = f"Grouped Heads [/red] {ESCAPES} [link=http://evil.example]Title[/link]"
AUTHORS = ["Mallory [/bold]\x1b[2J", "Eve"]
HEADING = "1 Grouped Query Heads [/red] Everywhere"
SENTENCES = [
    "Grouped-query attention divides the query heads into groups that share one key head and one value head.",
    "Sharing key and value heads shrinks the memory the decoder needs for its cache during inference.",
    f"The grouped heads [/red] reach quality close to multi-head attention {ESCAPES} at the speed of multi-query.",
    "We convert existing multi-head checkpoints into grouped-query checkpoints with a short uptraining stage.",
]
QUESTION = "How does grouped-query attention share key and value heads between query heads?"
# What a terminal would act on: ESC, BEL, the one-byte CSI.
RAW_CONTROL = re.compile("[\x1b\x07\x9b]")

pytestmark = pytest.mark.model  # the CLI ingests with the real embedder


def _hostile_mirror(folder: Path) -> Path:
    folder.mkdir(parents=True)
    body = [HEADING] + [s for _ in range(6) for s in SENTENCES]
    text_pdf(folder / f"{HOSTILE_ID}.pdf", [["Grouped query attention for fast decoders"] + body[:14], body[14:]])
    (folder / "manifest.json").write_text(json.dumps([{
        "arxiv_id": HOSTILE_ID, "title": TITLE, "authors": AUTHORS, "year": 2024, "abstract": SENTENCES[0],
        "arxiv_version": "v1"}]))
    return folder


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory):
    """A library holding the hostile paper, ingested by the real CLI; its home and mirror paths are hostile too."""
    root = tmp_path_factory.mktemp("hostile")
    home, mirror = root / "home [/red]\x1b[2J", _hostile_mirror(root / "mirror [link=http://x]m[/link]")
    done = run("ingest", HOSTILE_ID, "2401.00078", home=home, mirror=mirror)  # the second is not in the mirror
    assert done.returncode == 0, done.stderr[-3000:]
    return home, mirror


def run(*args: str, home: Path, mirror: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return run_cli(home, *args, mirror=mirror, **env)


def assert_inert(done: subprocess.CompletedProcess, code: int) -> str:
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed and "MarkupError" not in printed, printed[-3000:]
    assert not RAW_CONTROL.search(printed), f"raw control characters in: {printed[:2000]!r}"
    assert done.returncode == code, printed[-3000:]
    return printed


def test_every_command_prints_hostile_data_inert(hostile_home):
    home, mirror = hostile_home
    listed = assert_inert(run("papers", home=home), 0)
    assert "Grouped Heads [/red] ␛]0;PWNED␇ ␛[2J" in listed  # titles are cut at 70 characters
    failed = assert_inert(run("papers", "--failed", home=home), 0)
    assert "2401.00078" in failed
    found = assert_inert(run("search", "grouped query heads share key value", home=home), 0)
    assert "[/red]" in found and "Grouped Query Heads" in found and "␛[2J" in found
    assert_inert(run("search", "grouped heads", "--mode", "bm25", "--paper", HOSTILE_ID, home=home), 0)
    assert_inert(run("doctor", home=home), 0)
    again = assert_inert(run("ingest", HOSTILE_ID, "2401.00078", home=home, mirror=mirror), 0)
    assert "1 failed" in again and "1 ok" in again


def test_json_keeps_the_characters_escaped(hostile_home):
    home, _ = hostile_home
    done = run("search", "grouped heads", "--json", home=home)
    assert done.returncode == 0 and "\x1b" not in done.stdout and "\\u001b" in done.stdout
    hits = json.loads(done.stdout)
    assert hits[0]["paper"]["title"] == TITLE and ESCAPES in " ".join(h["chunk"]["text"] for h in hits)
    papers = json.loads(run("papers", "--json", home=home).stdout)
    assert [p["paper"]["authors"] for p in papers if p["status"] == "ok"] == [AUTHORS]


def test_ask_prints_hostile_quotes_and_server_errors_inert(hostile_home, misbehaving_llm):
    home, _ = hostile_home
    url = misbehaving_llm("reply", LLM_REPLY="[1][2][3]")
    answered = run("--llm-url", url, "--llm-model", LLM_MODEL, "ask", QUESTION, home=home)
    printed = assert_inert(answered, 0)
    assert "Sources" in printed and "[/red]" in printed
    broken = misbehaving_llm("error")  # HTTP 500 whose message holds markup and escape sequences
    failed = run("--llm-url", broken, "--llm-model", LLM_MODEL, "ask", QUESTION, home=home)
    printed = assert_inert(failed, 1)  # the model failed: exit 1 even with quotes shown in its place
    assert "model exploded [/red]" in printed and "[link=http://evil.example]x[/link]" in printed
    as_json = run("--llm-url", broken, "--llm-model", LLM_MODEL, "ask", QUESTION, "--json", home=home)
    assert as_json.returncode == 1 and "\x1b" not in as_json.stdout
    assert "\x1b[2J" in json.loads(as_json.stdout)["error"]


def test_remove_names_the_paper_inert(hostile_home, tmp_path):
    home, mirror = hostile_home
    gone = assert_inert(run("remove", "2401.00078", home=home), 0)
    assert "removed 2401.00078" in gone
    assert_inert(run("remove", "2401.99999", home=home), 1)
