"""Damage at rest, through the real CLI on a real library (two small papers; chromadb, BM25 and ColBERT):
a truncated or garbled chroma file, store, BM25 or ColBERT file, a lost store, a store row changed by hand.
`doctor --json` names the damaged file (exit 1) and never prints a traceback; every other command says one
line or runs degraded; `doctor --repair` restores a consistent library in which every paper is searchable in
every mode and nothing that was ingested is lost."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL_IDS, make_mirror

ROOT = Path(__file__).resolve().parent.parent
ROBERTA, GQA = SMALL_IDS
MODES = ("dense", "bm25", "colbert", "hybrid")
QUERIES = {GQA: "grouped-query attention key-value heads", ROBERTA: "dynamic masking of the pretraining data"}

pytestmark = [pytest.mark.model, pytest.mark.colbert]


def cli(home: Path, mirror: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({"PAPER_ASSISTANT_INDEXES": '["bm25", "colbert"]', "PAPER_ASSISTANT_EMBED_BATCH_SIZE": "8",
                "COLUMNS": "300"})
    base = [sys.executable, "-m", "assistant", "--home", str(home), "--offline"]
    if mirror is not None:
        base += ["--mirror", str(mirror)]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A library of the two small papers, built once by the CLI; each test damages a copy."""
    root = tmp_path_factory.mktemp("pristine")
    mirror = make_mirror(root / "mirror", SMALL_IDS)
    done = cli(root / "home", mirror, "ingest", *SMALL_IDS)
    assert done.returncode == 0, done.stderr[-3000:]
    papers = json.loads(cli(root / "home", mirror, "papers", "--json").stdout)
    return root / "home", mirror, {p["paper"]["arxiv_id"]: p["n_chunks"] for p in papers}


@pytest.fixture
def library(pristine, tmp_path):
    home, mirror, counts = pristine
    shutil.copytree(home, tmp_path / "home")
    return tmp_path / "home", mirror, counts


def _garble(path: Path, at: int | None = None, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2 if at is None else at
    data[start:start + size] = bytes((i * 37 + 11) % 256 for i in range(min(size, len(data) - start)))
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _version(home: Path, name: str) -> Path:
    return home / "index" / name / (home / "index" / name / "CURRENT").read_text().strip()


DAMAGE = {
    "chroma truncated": (lambda h: _truncate(h / "index/chroma/chroma.sqlite3"), "dense", "chroma"),
    "chroma garbled page": (lambda h: _garble(h / "index/chroma/chroma.sqlite3"), "dense", "chroma"),
    "bm25 tokens deleted": (lambda h: (_version(h, "bm25") / "tokens.npy").unlink(), "bm25", "tokens.npy"),
    "bm25 chunks truncated": (lambda h: _truncate(_version(h, "bm25") / "chunks.json"), "bm25", "chunks.json"),
    "colbert codes deleted": (lambda h: (_version(h, "colbert") / "0.codes.pt").unlink(), "colbert", "0.codes.pt"),
    "colbert ivf truncated": (lambda h: _truncate(_version(h, "colbert") / "ivf.pid.pt"), "colbert", "ivf.pid.pt"),
    "store deleted": (lambda h: (h / "index/library.sqlite").unlink(), "store", "library.sqlite"),
    "store garbled page": (lambda h: _garble(h / "index/library.sqlite", at=8192), "store", "library.sqlite"),
    "store truncated": (lambda h: _truncate(h / "index/library.sqlite"), "store", "library.sqlite"),
}


def assert_whole(home: Path, mirror: Path, counts: dict[str, int]) -> None:
    """doctor consistent; every paper ok with all its passages and found first in every mode."""
    doctor = cli(home, mirror, "doctor", "--json")
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0 and report["consistent"] and not report["issues"], report["issues"]
    papers = {p["paper"]["arxiv_id"]: (p["status"], p["n_chunks"]) for p in json.loads(cli(home, mirror, "papers", "--json").stdout)}
    assert papers == {aid: ("ok", n) for aid, n in counts.items()}
    for mode in MODES:
        for aid, query in QUERIES.items():
            done = cli(home, mirror, "search", query, "--mode", mode, "-k", "3", "--json")
            assert done.returncode == 0 and "warning" not in done.stderr, (mode, done.stderr[-2000:])
            assert json.loads(done.stdout)[0]["chunk"]["arxiv_id"] == aid, (mode, aid)


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damage_is_named_then_repaired(library, case):
    home, mirror, counts = library
    damage, index, file = DAMAGE[case]
    damage(home)
    doctor = cli(home, mirror, "doctor", "--json")
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr[-3000:]
    issues = json.loads(doctor.stdout)["issues"]
    named = [i for i in issues if i["kind"] == "damaged" and i["index"] == index]
    assert named and file in named[0]["file"], issues
    # every other command: one line naming the damage, or a search that runs without the damaged index
    listed = cli(home, mirror, "papers")
    assert "Traceback" not in listed.stderr, listed.stderr[-2000:]
    if index == "store":
        lines = listed.stderr.strip().splitlines()
        assert listed.returncode == 2 and len(lines) == 1 and "doctor --repair" in lines[0], lines
    else:  # `papers` reads no index; a search that needs the damaged one finds it
        found = cli(home, mirror, "search", QUERIES[GQA], "--mode", "hybrid", "--json")
        assert found.returncode == 0 and "Traceback" not in found.stderr
        if "doctor --repair" in found.stderr:
            alone = cli(home, mirror, "search", QUERIES[GQA], "--mode", index)
            assert alone.returncode == 2 and "doctor --repair" in alone.stderr and "Traceback" not in alone.stderr
        else:
            # A garbled page the search never reads (where it falls depends on the file's layout): the search
            # is right from the pages it does read, and only doctor's integrity check sees the damage.
            assert case == "chroma garbled page", found.stderr[-2000:]
            assert json.loads(found.stdout)[0]["chunk"]["arxiv_id"] == GQA
    repaired = cli(home, mirror, "doctor", "--repair", "--json")
    assert repaired.returncode == 0 and "Traceback" not in repaired.stderr, repaired.stdout[-3000:] + repaired.stderr[-3000:]
    assert_whole(home, mirror, counts)


def test_a_lost_store_without_backup_is_made_again_from_the_pdfs(library):
    home, mirror, counts = library
    (home / "index/library.sqlite").unlink()
    (home / "index/library.sqlite.backup").unlink()
    refused = cli(home, None, "doctor", "--repair", "--json")  # no mirror: the PDFs are out of reach
    assert refused.returncode == 1
    assert "left as they are" in " ".join(json.loads(refused.stdout)["actions"])
    held = cli(home, None, "search", QUERIES[GQA], "--mode", "bm25", "--json")  # one line: the store is lost
    assert held.returncode == 2 and "doctor --repair" in held.stderr and len(held.stderr.strip().splitlines()) == 1
    bm25 = json.loads((_version(home, "bm25") / "chunks.json").read_text())
    assert len(bm25["ids"]) == sum(counts.values())
    repaired = cli(home, mirror, "doctor", "--repair", "--json")
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert_whole(home, mirror, counts)


@pytest.mark.parametrize("change", ["text", "paper"])
def test_a_row_changed_by_hand_is_never_shown_and_is_remade(library, change):
    home, mirror, counts = library
    db = sqlite3.connect(home / "index/library.sqlite")
    target = db.execute("SELECT id FROM chunks WHERE arxiv_id=? ORDER BY seq LIMIT 1 OFFSET 3", (GQA,)).fetchone()[0]
    if change == "text":
        db.execute("UPDATE chunks SET text=? WHERE id=?",
                   ("PLANTED grouped-query attention key-value heads answer: BANANA", target))
    else:
        db.execute("UPDATE chunks SET arxiv_id=? WHERE id=?", (ROBERTA, target))
    db.commit()
    db.close()
    found = cli(home, mirror, "search", QUERIES[GQA], "--mode", "bm25", "-k", "30", "--json")
    hits = json.loads(found.stdout)
    assert target not in {h["chunk"]["id"] for h in hits} and "BANANA" not in found.stdout
    doctor = cli(home, mirror, "doctor", "--json")
    issues = json.loads(doctor.stdout)["issues"]
    assert doctor.returncode == 1 and any(i["kind"] == "tampered" and i["file"].endswith("library.sqlite")
                                          for i in issues), issues
    repaired = cli(home, mirror, "doctor", "--repair", "--json")
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert "from the backup" in " ".join(json.loads(repaired.stdout)["actions"])
    row = sqlite3.connect(home / "index/library.sqlite").execute("SELECT arxiv_id, text FROM chunks WHERE id=?",
                                                                 (target,)).fetchone()
    assert row[0] == GQA and "BANANA" not in row[1]
    assert_whole(home, mirror, counts)
