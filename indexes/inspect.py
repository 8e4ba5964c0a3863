"""`doctor`'s look at every file of the library, each opened defensively, before anything else opens them.

One `Issue` (kind "damaged") per damaged file, naming it and what is wrong: the SQLite store (sqlite's
integrity check; missing while the indexes still hold passages), chromadb's SQLite file and its vector
segment (probed in a child process: a garbled HNSW file can crash the process that reads it), BM25's
arrays and JSON, and ColBERT's codes, residuals, IVF and metadata, each loaded and checked against the
others' sizes. Rows that fail their checksum are `health.check`'s business (it needs the opened store).
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from foundation.config import Settings
from indexes.health import REPAIR, Issue
from indexes.integrity import file_problem
from indexes.versioned import VersionedDir

PROBE_TIMEOUT_S = 180
_CHROMA_PROBE = """
import json, sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
col = client.get_collection(sys.argv[2])
n = col.count()
got = col.get(include=["embeddings"], limit=max(n, 1))
if n:
    col.query(query_embeddings=[list(got["embeddings"][0])], n_results=min(10, n))
print(json.dumps({"count": n, "ids": len(got["ids"])}))
"""


def _damaged(index: str, path: Path, problem: str, effect: str) -> Issue:
    return Issue(kind="damaged", index=index, file=str(path), unavailable=True,
                 message=f"{path} is damaged ({problem}): {effect}; {REPAIR}")


def held_papers(settings: Settings) -> dict[str, set[str]]:
    """arXiv ids of the passages each index holds, read from their files without the store: what a repair
    parses again when the store is lost and has no backup. Unreadable files give nothing."""
    out: dict[str, set[str]] = {}
    chroma = settings.index_dir / "chroma" / "chroma.sqlite3"
    try:
        db = sqlite3.connect(f"file:{chroma}?mode=ro", uri=True)
        try:
            out["dense"] = {r[0] for r in db.execute(
                "SELECT string_value FROM embedding_metadata WHERE key='arxiv_id'") if r[0]}
        finally:
            db.close()
    except sqlite3.Error:
        pass
    for name, file in (("bm25", "chunks.json"), ("colbert", "pids.json")):
        folder = VersionedDir(settings.index_dir / name).current()
        try:
            data = json.loads((folder / file).read_text()) if folder else {}
            out[name] = {a for a in data.get("arxiv_ids", []) if a}
        except (OSError, ValueError, AttributeError):
            continue
    return out


def store_lost(settings: Settings) -> str | None:
    """Why the store counts as lost (None when it does not): missing, or holding no passages, while its backup
    or the indexes say the library had some. Opening such a store would make (or keep) an empty one and read
    every index as orphans of it."""
    path = settings.index_dir / "library.sqlite"
    if path.exists():
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]:
                    return None
            finally:
                db.close()
        except sqlite3.Error:
            return None  # damaged, not lost: file_problem says how
    held = set().union(*held_papers(settings).values()) if path.parent.exists() else set()
    if not held:
        return None
    state = "holds no passages" if path.exists() else "missing"
    return f"{state}, while the indexes hold passages of {len(held)} papers"


def inspect_store(settings: Settings) -> list[Issue]:
    path = settings.index_dir / "library.sqlite"
    lost = store_lost(settings)
    if lost:
        return [_damaged("store", path, lost, "nothing can be searched or cited")]
    problem = file_problem(path)
    if problem and problem != "missing":
        return [_damaged("store", path, problem, "every command stops")]
    return []


def inspect_chroma(settings: Settings) -> list[Issue]:
    if settings.chroma_url:
        return []
    folder = settings.index_dir / "chroma"
    db = folder / "chroma.sqlite3"
    if not db.exists():
        return []
    problem = file_problem(db)
    if problem:
        return [_damaged("dense", db, problem, "dense and hybrid search cannot use it and nothing can be ingested")]
    try:
        done = subprocess.run([sys.executable, "-c", _CHROMA_PROBE, str(folder), settings.collection],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    except subprocess.TimeoutExpired:
        return [_damaged("dense", folder, f"reading it did not finish in {PROBE_TIMEOUT_S} s",
                         "dense and hybrid search cannot use it")]
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]
        if "does not exist" in last:  # no collection yet: an empty library
            return []
        return [_damaged("dense", folder, last, "dense and hybrid search cannot use it and nothing can be ingested")]
    return []


def inspect_bm25(settings: Settings) -> list[Issue]:
    folder = VersionedDir(settings.index_dir / "bm25").current()
    if folder is None:
        return []
    effect = "bm25 search is unavailable (hybrid runs without it)"
    try:
        import numpy as np

        for name in ("manifest.json", "chunks.json", "vocab.json"):
            file = folder / name
            json.loads(file.read_text())
        meta = json.loads((folder / "chunks.json").read_text())
        vocab = json.loads((folder / "vocab.json").read_text())
        file = folder / "tokens.npy"
        tokens = np.load(file)
        file = folder / "lengths.npy"
        lengths = np.load(file)
    except FileNotFoundError:
        return [_damaged("bm25", file, "missing", effect)]
    except (OSError, ValueError, EOFError) as exc:
        return [_damaged("bm25", file, f"unreadable: {type(exc).__name__}: {str(exc)[:120]}", effect)]
    if len(meta.get("ids", [])) != len(lengths) or len(meta.get("arxiv_ids", [])) != len(lengths):
        return [_damaged("bm25", folder / "chunks.json", f"{len(meta.get('ids', []))} ids for {len(lengths)} passages",
                         effect)]
    if int(lengths.sum()) != len(tokens) or (len(tokens) and int(tokens.max()) >= len(vocab)):
        return [_damaged("bm25", folder / "tokens.npy", "its tokens do not match the lengths or the vocabulary", effect)]
    return []


def inspect_colbert(settings: Settings) -> list[Issue]:
    folder = VersionedDir(settings.index_dir / "colbert").current()
    if folder is None:
        return []
    effect = "colbert search is unavailable (hybrid runs without it)"
    file = folder / "metadata.json"
    try:
        import torch

        meta = json.loads(file.read_text())
        doclens: list[int] = []
        codes_total = 0
        for i in range(int(meta.get("num_chunks", 1))):
            file = folder / f"doclens.{i}.json"
            part = json.loads(file.read_text())
            doclens += part
            file = folder / f"{i}.codes.pt"
            codes = torch.load(file, map_location="cpu")
            file = folder / f"{i}.residuals.pt"
            residuals = torch.load(file, map_location="cpu")
            if len(codes) != sum(part) or len(residuals) != len(codes):
                return [_damaged("colbert", file, f"{len(codes)} codes, {len(residuals)} residuals for {sum(part)} "
                                                  "token vectors", effect)]
            codes_total += len(codes)
        for name in ("centroids.pt", "avg_residual.pt", "buckets.pt"):
            file = folder / name
            torch.load(file, map_location="cpu")
        file = folder / "ivf.pid.pt"
        ivf, ivf_lengths = torch.load(file, map_location="cpu")
        if int(ivf_lengths.sum()) > len(ivf):  # colbert-ai may leave room at the end
            return [_damaged("colbert", file, "its lists do not add up to its lengths", effect)]
        file = folder / "pids.json"
        pids = json.loads(file.read_text())
    except FileNotFoundError:
        return [_damaged("colbert", file, "missing", effect)]
    except Exception as exc:  # torch.load raises RuntimeError, pickle errors, EOFError... on a damaged file
        return [_damaged("colbert", file, f"unreadable: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}",
                         effect)]
    ids = pids.get("ids", []) if isinstance(pids, dict) else []
    if len(ids) != len(doclens):
        return [_damaged("colbert", folder / "pids.json", f"{len(ids)} ids for {len(doclens)} passages", effect)]
    return []


def inspect_files(settings: Settings) -> list[Issue]:
    """Every damaged file of the library at `settings.home`, store first."""
    issues = inspect_store(settings) + inspect_chroma(settings)
    if "bm25" in settings.indexes:
        issues += inspect_bm25(settings)
    if "colbert" in settings.indexes:
        issues += inspect_colbert(settings)
    return issues
