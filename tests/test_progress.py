"""Progress where there is no terminal (a log, CI): plain lines with papers done, chunks/s and ETA; and the
end-of-ingest failure table grouped by reason."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rich.console import Console

from assistant.cli.progress import IngestProgress, LineProgress, progress_bar
from assistant.cli.render import failure_groups, print_ingest_summary
from foundation.types import IngestResult, PaperStatus, ProgressEvent

ROOT = Path(__file__).resolve().parent.parent


def log_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=200), buf


def test_progress_bar_is_plain_lines_without_a_terminal():
    console, buf = log_console()
    assert isinstance(progress_bar(console), LineProgress)
    assert not isinstance(progress_bar(Console(file=io.StringIO(), force_terminal=True)), LineProgress)
    with progress_bar(console, interval=0) as bar:
        task = bar.add_task("scoring", total=4)
        for _ in range(4):
            bar.update(task, advance=1)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("scoring: 1/4 (25%)") and "ETA" in lines[0]
    assert lines[-1].startswith("scoring: 4/4 (100%)")
    assert "\x1b[" not in buf.getvalue()  # no escape codes in a log


def test_ingest_lines_show_papers_chunks_per_second_and_eta():
    console, buf = log_console()
    with IngestProgress(console, interval=0) as progress:
        progress(ProgressEvent(stage="fetch", message="4 papers to ingest", done=0, total=4))
        for i, paper in enumerate(["1111.00001", "1111.00002"]):
            for done in (32, 50):
                progress(ProgressEvent(stage="embed", message=paper, done=done, total=50, item=paper))
            progress(ProgressEvent(stage="index", message=paper, done=i + 1, total=4, item=paper))
        progress(ProgressEvent(stage="build", message="colbert index: adding 100 passages", done=40, total=100))
    out = buf.getvalue()
    line = re.compile(r"ingest: (\d+)/4 papers, (\d+) chunks, [\d.]+ chunks/s, ETA (\S+), \S+ elapsed")
    found = [m.groups() for m in line.finditer(out)]
    assert ("2", "100", found[-1][2]) == found[-1] and found[-1][2] != "?"  # chunks counted once per paper
    assert re.search(r"colbert index: adding 100 passages: 40/100, ETA \S+", out)
    assert "\x1b[" not in out


def test_failures_grouped_by_reason():
    results = [IngestResult(arxiv_id=f"2401.0000{i}", status=PaperStatus.failed,
                            reason=f"fetch failed: cannot reach the arXiv API for 2401.0000{i}") for i in range(5)]
    results.append(IngestResult(arxiv_id="1706.03762", status=PaperStatus.failed, reason="parse failed: no indexable text"))
    results.append(IngestResult(arxiv_id="no arXiv ids found in list.txt", status=PaperStatus.failed,
                                reason="no arXiv ids found in list.txt", kind="input"))  # as ingest/pipeline.py makes it
    groups = failure_groups([r for r in results if r.kind == "paper"])
    assert [(reason, len(ids)) for reason, ids in groups] == [
        ("fetch failed: cannot reach the arXiv API for <id>", 5), ("parse failed: no indexable text", 1)]
    console, buf = log_console()
    print_ingest_summary(console, results, 1.0)
    out = buf.getvalue()
    assert "6 failed" in out and out.count("cannot reach the arXiv API") == 1
    assert "input skipped: no arXiv ids found in list.txt" in out


@pytest.mark.model  # the subprocess ingests with the real embedder
def test_cli_ingest_prints_progress_lines_to_a_log(tmp_path, mini_mirror):
    env = {**os.environ, "PAPER_ASSISTANT_INDEXES": '["bm25"]', "PAPER_ASSISTANT_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "assistant", "--mirror", str(mini_mirror), "--offline", "ingest",
                           "2305.13245"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"ingest: 1/1 papers, \d+ chunks, [\d.]+ chunks/s", proc.stderr), proc.stderr[-2000:]
    assert "\x1b[" not in proc.stderr
