"""Faults with real processes and real stores: the CLI runs in a subprocess on a tmp home with a mirror of
small real PDFs; PAPER_ASSISTANT_FAULT stops it at a named point (foundation/faults.py) and the test
kills it there with SIGKILL. Every case ends with `doctor` reporting consistent and no search hit from a
paper that is not ok at its current version."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.api import Assistant
from foundation.config import Settings
from foundation.types import PaperStatus
from assistant.engine.retrieve import RetrievalError
from indexes.health import check
from tests.conftest import SMALL_IDS, make_mirror

ROOT = Path(__file__).resolve().parent.parent

ROBERTA, GQA = SMALL_IDS
QUERIES = ("dynamic masking of the pretraining data", "grouped-query attention key-value heads")


def _env(indexes: tuple[str, ...], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    env.update({"PAPER_ASSISTANT_INDEXES": json.dumps(list(indexes)), "PAPER_ASSISTANT_EMBED_BATCH_SIZE": "8", **extra})
    return env


def _cmd(home, mirror, args) -> list[str]:
    return [sys.executable, "-m", "assistant", "--home", str(home), "--mirror", str(mirror), "--offline", *args]


def cli(home, mirror, *args: str, indexes=("bm25",)) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(home, mirror, args), capture_output=True, text=True, timeout=600, env=_env(indexes))


def kill_at(point: str, home, mirror, *args: str, indexes=("bm25",)) -> None:
    """Run the CLI until it reaches `point`, then kill -9 it there."""
    proc = subprocess.Popen(_cmd(home, mirror, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=_env(indexes, PAPER_ASSISTANT_FAULT=point))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"FAULT {point.split('@')[0]} "):
            _torch_extensions_settled()
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])


def _torch_extensions_settled(limit_s: float = 300.0) -> None:
    """Wait while torch compiles colbert-ai's C++ extensions (a background thread of the stopped process may
    be at it): a kill then would leave torch's build lock file behind and hang every later load."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not root:
        return
    from pathlib import Path

    deadline = time.time() + limit_s
    while any(Path(root).glob("*/lock")) and time.time() < deadline:
        time.sleep(0.5)


def doctor(home, mirror, *flags: str, indexes=("bm25",)) -> tuple[int, dict]:
    done = cli(home, mirror, "doctor", "--json", *flags, indexes=indexes)
    return done.returncode, json.loads(done.stdout)


def assert_consistent(home, mirror, indexes=("bm25",)) -> dict:
    code, report = doctor(home, mirror, indexes=indexes)
    assert code == 0 and report["consistent"] and report["issues"] == [], report["issues"]
    return report


def open_library(home, mirror, embedder, indexes=("bm25",)) -> Assistant:
    return Assistant(Settings(home=home, mirror=mirror, offline=True, indexes=list(indexes)), embedder=embedder)


def assert_no_unsearchable_hits(a: Assistant, modes=("dense", "bm25", "hybrid")) -> int:
    """Every hit, in every mode, is of a paper ok in the store at its current version; returns the hit count."""
    ok = {r.paper.arxiv_id: r.paper.version for r in a.papers() if r.status == PaperStatus.ok}
    n = 0
    for mode in modes:
        for query in QUERIES:
            try:
                hits = a.search(query, k=10, mode=mode)
            except RetrievalError as exc:  # a secondary index still being built says so
                assert mode != "dense" and "search is unavailable" in str(exc), exc
                continue
            for hit in hits:
                assert ok.get(hit.chunk.arxiv_id, "not ok") == hit.chunk.version, (mode, hit.chunk.id)
                n += 1
        # The raw secondary indexes never hold a stored chunk that is not searchable (a pending paper, a
        # staged version); ids the store dropped (a kill between a swap and the index update) read as nothing.
        for name, index in a.library.extra_indexes.items():
            for query in QUERIES:
                for cid, _ in index.search(query, 50):
                    chunk = a.library.store.chunks([cid]).get(cid)
                    assert chunk is None or ok.get(chunk.arxiv_id, "not ok") == chunk.version, (name, cid)
    return n


@pytest.fixture
def mirror(tmp_path):
    return make_mirror(tmp_path / "mirror", SMALL_IDS)


def test_killed_mid_embedding_then_another_paper(tmp_path, mirror, embedder):
    """kill -9 while a paper is embedded (pending), then ingest another: the pending paper reaches no
    secondary index and no search; doctor finds it and --repair finishes it from its staged passages."""
    home = tmp_path / "home"
    kill_at("embed-batch@2", home, mirror, "ingest", ROBERTA, "--json")
    done = cli(home, mirror, "ingest", GQA, "--json")
    assert done.returncode == 0, done.stderr
    assert "half-ingested" in done.stderr  # the warning on open names the interrupted paper

    a = open_library(home, mirror, embedder)
    assert {r.paper.arxiv_id: r.status for r in a.papers()} == {ROBERTA: PaperStatus.pending, GQA: PaperStatus.ok}
    roberta = {c.id for c in a.library.store.chunks_of(ROBERTA)}
    assert roberta and not roberta & set(a.library.extra_indexes["bm25"].chunk_ids())
    assert assert_no_unsearchable_hits(a) > 0
    a.close()

    code, report = doctor(home, mirror)
    assert code == 1 and {(i["kind"], i["arxiv_id"]) for i in report["issues"]} >= {("pending", ROBERTA)}
    code, repaired = doctor(home, mirror, "--repair")
    assert code == 0 and repaired["after"]["consistent"], repaired
    assert any("finished" in action for action in repaired["actions"])
    assert_consistent(home, mirror)
    a = open_library(home, mirror, embedder)
    assert {r.paper.arxiv_id: r.status for r in a.papers()} == {ROBERTA: PaperStatus.ok, GQA: PaperStatus.ok}
    assert a.search(QUERIES[0], k=3, mode="bm25")[0].chunk.arxiv_id == ROBERTA
    a.close()


def test_failed_version_upgrade_keeps_the_old_version(tmp_path, embedder):
    """`ingest 2305.13245v4` with only v3 in the mirror: exit 1 with an error field, the message says v3 is
    there and stays; v3 stays ok, indexed and searchable."""
    home, mirror = tmp_path / "home", make_mirror(tmp_path / "mirror", [GQA])
    first = cli(home, mirror, "ingest", GQA, "--json")
    assert first.returncode == 0, first.stderr
    n = json.loads(first.stdout)["results"][0]["n_chunks"]

    upgrade = cli(home, mirror, "ingest", f"{GQA}v4", "--json")
    assert upgrade.returncode == 1
    out = json.loads(upgrade.stdout)
    assert out["error"] and out["ok"] == 0 and out["failed"] == 1
    reason = out["results"][0]["reason"]
    assert "the mirror holds v3" in reason and "v3 is indexed and stays in use" in reason, reason

    a = open_library(home, mirror, embedder)
    [record] = a.papers()
    assert record.status == PaperStatus.ok and record.paper.version == 3 and record.n_chunks == n
    assert record.paper.title.startswith("GQA")
    assert a.search(QUERIES[1], k=3)[0].chunk.arxiv_id == GQA
    assert_no_unsearchable_hits(a)
    a.close()
    assert_consistent(home, mirror)


def test_killed_version_upgrade_rolls_back_or_finishes(tmp_path, embedder):
    """A new version is staged beside the old one and swapped in by one transaction: killed before the
    swap, v3 stays the searchable one (doctor rolls v4 back); killed after it, v4 is (doctor drops v3)."""
    home, mirror = tmp_path / "home", make_mirror(tmp_path / "mirror", [GQA])
    assert cli(home, mirror, "ingest", GQA, "--json").returncode == 0
    manifest = json.loads((mirror / "manifest.json").read_text())
    (mirror / "manifest.json").write_text(json.dumps([{**m, "arxiv_version": "v4"} for m in manifest]))

    kill_at("embedded", home, mirror, "ingest", f"{GQA}v4", "--json")  # v4 embedded, not yet promoted
    a = open_library(home, mirror, embedder)
    assert a.papers()[0].status == PaperStatus.ok and a.papers()[0].paper.version == 3
    assert {c.version for c in a.library.store.chunks_of(GQA)} == {3, 4}
    assert {h.chunk.version for h in a.search(QUERIES[1], k=10)} == {3}
    assert_no_unsearchable_hits(a)
    a.close()
    code, report = doctor(home, mirror)
    assert code == 1 and [i["kind"] for i in report["issues"]] == ["other_version"], report["issues"]
    code, repaired = doctor(home, mirror, "--repair")
    assert code == 0, repaired
    assert_consistent(home, mirror)

    kill_at("promoted", home, mirror, "ingest", f"{GQA}v4", "--json")  # v4 live, v3 still in the indexes
    a = open_library(home, mirror, embedder)
    assert a.papers()[0].paper.version == 4 and {c.version for c in a.library.store.chunks_of(GQA)} == {4}
    assert {h.chunk.version for h in a.search(QUERIES[1], k=10, mode="hybrid")} == {4}
    assert_no_unsearchable_hits(a)
    a.close()
    code, report = doctor(home, mirror)
    kinds = {(i["kind"], i["index"]) for i in report["issues"]}
    assert code == 1 and kinds == {("orphan", "dense"), ("orphan", "bm25"), ("missing", "bm25")}, report["issues"]
    assert doctor(home, mirror, "--repair")[0] == 0
    report = assert_consistent(home, mirror)
    assert report["indexes"]["dense"] == report["indexes"]["bm25"] == report["searchable"]


@pytest.mark.colbert
def test_killed_colbert_build_is_reported_and_repaired(tmp_path, embedder):
    """kill -9 during the first ColBERT build (every paper already ok): colbert search says the index is
    unavailable (exit 2), hybrid says it runs degraded, doctor finds the build folder and --repair
    rebuilds."""
    both = ("bm25", "colbert")
    home, mirror = tmp_path / "home", make_mirror(tmp_path / "mirror", [GQA])
    kill_at("sync-colbert", home, mirror, "ingest", GQA, "--json", indexes=both)
    colbert_dir = home / "index" / "colbert"
    assert list(colbert_dir.glob(".build-*")) and not (colbert_dir / "CURRENT").exists()

    alone = cli(home, mirror, "search", QUERIES[1], "--mode", "colbert", indexes=both)
    assert alone.returncode == 2 and "colbert search is unavailable" in alone.stderr, alone.stderr
    hybrid = cli(home, mirror, "search", QUERIES[1], "--mode", "hybrid", "--json", indexes=both)
    assert hybrid.returncode == 0 and "hybrid search degraded: running without colbert" in hybrid.stderr
    assert json.loads(hybrid.stdout)[0]["chunk"]["arxiv_id"] == GQA

    code, report = doctor(home, mirror, indexes=both)
    assert code == 1 and {i["kind"] for i in report["issues"]} >= {"no_current", "leftover_build", "missing"}
    code, repaired = doctor(home, mirror, "--repair", indexes=both)
    assert code == 0 and repaired["after"]["consistent"], repaired
    assert not list(colbert_dir.glob(".build-*")) and (colbert_dir / "CURRENT").exists()
    report = assert_consistent(home, mirror, indexes=both)
    assert report["indexes"]["colbert"] == report["searchable"] > 0
    found = cli(home, mirror, "search", QUERIES[1], "--mode", "colbert", "--json", indexes=both)
    assert found.returncode == 0 and "warning" not in found.stderr
    assert json.loads(found.stdout)[0]["chunk"]["arxiv_id"] == GQA


OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from foundation.config import Settings
from indexes.embedder import SentenceTransformerEmbedder
from indexes.library import Library
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
library = Library(Settings(home=Path(sys.argv[1]), offline=True, indexes=["bm25"]), SentenceTransformerEmbedder("all-MiniLM-L6-v2"))
print(len(library.papers()), library.dense.count())
"""


@pytest.mark.slow  # 12 interpreters started in rounds of 4, each round waiting 8 s: ~35 s
def test_processes_creating_one_new_library_at_once(tmp_path):
    """Four processes open the same new library in the same instant (two ingests started together do):
    each gets it, none sees sqlite's or chromadb's "database is locked"."""
    for round_ in range(3):
        home = tmp_path / f"home{round_}"
        start = time.time() + 8  # after every interpreter has imported what it needs
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(home), str(start)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outputs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err[-800:] for _, err in outputs if err]


def test_two_concurrent_ingests_and_a_reader(tmp_path, mirror, embedder):
    """Two ingests at once (the second waits for the library's writer lock, then skips what the first
    did) while a reader searches: every search succeeds with hits only from ok papers."""
    home = tmp_path / "home"
    procs = [subprocess.Popen(_cmd(home, mirror, ["ingest", *ids, "--json"]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(("bm25",)))
             for ids in ((ROBERTA, GQA), (GQA, ROBERTA))]
    # The reader starts once the library exists; its searches run while the ingests write.
    deadline = time.time() + 300
    while not (home / "index" / "library.sqlite").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    reader = open_library(home, mirror, embedder)
    searches = 0
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        assert_no_unsearchable_hits(reader, modes=("dense", "bm25", "hybrid"))
        searches += 1
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out)["results"] for out, _ in outputs]
    assert all(r["status"] == "ok" for rs in results for r in rs)
    assert sum(not r["skipped"] for rs in results for r in rs) == 2  # each paper indexed once
    assert searches >= 1
    assert assert_no_unsearchable_hits(reader) > 0
    reader.close()
    report = assert_consistent(home, mirror)
    assert report["indexes"]["dense"] == report["indexes"]["bm25"] == report["searchable"]
    assert check(open_library(home, mirror, embedder).library).consistent
