"""Generated reports stay small in git, and the project's Markdown links point at files that exist."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS_LIMIT_BYTES = 1_000_000
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")  # [text](target) and ![alt](target)


def tracked(*paths: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", *paths], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in listed.decode().split("\0") if p]


def test_committed_eval_reports_stay_under_a_megabyte() -> None:
    files = tracked("eval/reports")
    size = sum(p.stat().st_size for p in files)
    assert files and size <= REPORTS_LIMIT_BYTES, f"eval/reports holds {size:,} bytes in git"
    bulky = [p.name for p in files if p.name in ("results.jsonl", "judge_check.json", "report.html")]
    assert not bulky, f"generated dumps are git-ignored, not committed: {bulky}"


def test_markdown_links_point_at_files_that_exist() -> None:
    broken = []
    for doc in tracked("*.md"):
        for target in LINK.findall(doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, "\n".join(broken)
