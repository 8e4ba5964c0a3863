"""Hostile PDFs, built in code with pypdf (tests/hostile_pdfs.py), parsed each in a fresh process: time, peak
memory and what became of the paper. Baseline beside it: the hyphen-repair pattern before the fix, timed on
words far shorter than the 1,000,000 letters the new one handles.

    python bench/hostile_input.py [--ingest]

--ingest also runs `paper-assistant ingest` over all of them plus one good paper (GQA) through the real
CLI and reports its time, peak memory and each paper's outcome.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foundation.hardware import cpu_description  # noqa: E402
from tests import hostile_pdfs  # noqa: E402
from tests.conftest import make_mirror  # noqa: E402

OLD_HYPHEN_BREAK = re.compile(r"([A-Za-z]+)-\n([a-z][A-Za-z]*)(-?)")  # before the fix (ingest/parse.py)
CASES = {
    "1 MB word (among prose)": lambda d: hostile_pdfs.long_word_pdf(d / "word.pdf"),
    "1 MB word (alone)": lambda d: hostile_pdfs.text_pdf(d / "word-only.pdf", [["x" * 1_000_000]], compress=True),
    "6 MB of text": lambda d: hostile_pdfs.inflating_pdf(d / "inflate.pdf"),
    "1 GiB zlib bomb page": lambda d: hostile_pdfs.zlib_bomb_pdf(d / "bomb.pdf"),
    "cyclic page tree": lambda d: hostile_pdfs.cyclic_pages_pdf(d / "cyclic.pdf"),
}
CHILD = """
import json, sys, time
from ingest.parse import ParseError, parse_pdf
start = time.perf_counter()
try:
    p = parse_pdf(sys.argv[1], '2401.00001')
    out = {'outcome': f'parsed: {len(p.text):,} characters' + ''.join(f'; {d}' for d in p.dropped_pages)}
except ParseError as exc:
    out = {'outcome': 'failed: ' + str(exc).split(': ', 1)[-1]}
out['seconds'] = time.perf_counter() - start
out['rss_mb'] = int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) / 1024
print(json.dumps(out))
"""


def baseline() -> None:
    print("hyphen repair on one word of n letters (before the fix / now):")
    from collections import Counter

    from ingest.parse import _dehyphenate

    for letters in (5_000, 10_000, 20_000):
        word = "x" * letters
        start = time.perf_counter()
        OLD_HYPHEN_BREAK.sub("", word)
        old = time.perf_counter() - start
        start = time.perf_counter()
        _dehyphenate(word, Counter())
        new = time.perf_counter() - start
        print(f"  {letters:>9,} letters: {old:8.3f} s / {new:.4f} s")
    start = time.perf_counter()
    _dehyphenate("x" * 1_000_000, Counter())
    print(f"  1,000,000 letters:  (hours) / {time.perf_counter() - start:.4f} s")


def parse_cases(folder: Path) -> dict[str, Path]:
    made = {}
    print(f"\n{'case':<26} {'file':>10} {'parse':>8} {'peak RSS':>9}  outcome")
    for name, build in CASES.items():
        path = build(folder)
        made[name] = path
        done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=600,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if done.returncode != 0:
            print(f"{name:<26} crashed: {done.stderr[-300:]}")
            continue
        r = json.loads(done.stdout)
        size = path.stat().st_size
        print(f"{name:<26} {size / 1024:>8.0f} KB {r['seconds']:>7.2f}s {r['rss_mb']:>6.0f} MB  {r['outcome'][:150]}")
    return made


def ingest(folder: Path, made: dict[str, Path]) -> None:
    gqa = "2305.13245"
    mirror = make_mirror(folder / "mirror", [gqa])
    manifest = json.loads((mirror / "manifest.json").read_text())
    ids = {}
    for i, (name, path) in enumerate(made.items(), start=1):
        aid = f"2401.{10000 + i}"
        (mirror / f"{aid}.pdf").write_bytes(path.read_bytes())
        manifest.append({"arxiv_id": aid, "title": name, "authors": ["M. Allory"], "year": 2024})
        ids[aid] = name
    (mirror / "manifest.json").write_text(json.dumps(manifest))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({"PAPER_ASSISTANT_INDEXES": '["bm25"]', "PYTHONPATH": str(ROOT)})
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "assistant", "--home", str(folder / "home"), "--mirror", str(mirror),
                           "--offline", "ingest", *ids, gqa, "--json"], capture_output=True, text=True, timeout=1200,
                          env=env, cwd=ROOT)
    took = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\ningest of {len(ids)} hostile papers + GQA through the CLI: {took:.1f} s, peak RSS {rss:.0f} MB, "
          f"exit {done.returncode}")
    for r in json.loads(done.stdout)["results"]:
        print(f"  {ids.get(r['arxiv_id'], 'GQA (good)'):<26} {r['status']:<7} {r['n_chunks']:>4} passages  "
              f"{r['reason'][:140]}")


def main() -> None:
    parser = argparse.ArgumentParser(description="hostile PDFs: time and memory")
    parser.add_argument("--ingest", action="store_true", help="also ingest them through the real CLI")
    opts = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    baseline()
    with tempfile.TemporaryDirectory() as tmp:
        made = parse_cases(Path(tmp))
        if opts.ingest:
            ingest(Path(tmp), made)


if __name__ == "__main__":
    main()
