"""ColBERT (colbert-ai PLAID) index on real chunks of small papers, with the offline MiniLM checkpoint:
exact phrases, arXiv scoping, incremental add without a rebuild, remove, persistence across
processes, and a build killed half-way that leaves the old index answering."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from indexes.base import Index
from tests.conftest import kill_at_marker

ROOT = Path(__file__).resolve().parent.parent
BASE_IDS = ("1910.01108", "2305.13245", "2310.06825")  # DistilBERT, GQA, Mistral 7B
pytestmark = [pytest.mark.colbert, pytest.mark.model, pytest.mark.timeout(900)]


def containing(chunks, phrase):
    return {c.id for c in chunks if phrase.lower() in " ".join(c.text.split()).lower()}


@pytest.fixture(scope="module")
def ckpt_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("colbert-checkpoint")


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, paper_chunks, ckpt_cache):
    """A ColBERT index of three small papers, built once; tests copy it before changing it."""
    from indexes.colbert import ColBERTIndex

    path = tmp_path_factory.mktemp("colbert-base") / "colbert"
    ColBERTIndex(path, cache_dir=ckpt_cache).add([c for a in BASE_IDS for c in paper_chunks[a]])
    return path


def open_copy(base: Path, tmp_path: Path, ckpt_cache: Path):
    from indexes.colbert import ColBERTIndex

    shutil.copytree(base, tmp_path / "colbert", symlinks=True)
    return ColBERTIndex(tmp_path / "colbert", cache_dir=ckpt_cache)


def test_offline_checkpoint_is_identity_and_recorded(ckpt_cache):
    import json

    from safetensors.torch import load_file
    import torch

    from indexes.colbert.checkpoint import resolve_checkpoint

    folder = Path(resolve_checkpoint(cache_dir=ckpt_cache))
    prov = json.loads((folder / "PROVENANCE.json").read_text())
    assert prov["settings"]["dim"] == 384 and prov["trained_on"] is None
    weights = load_file(str(folder / "model.safetensors"))
    assert torch.equal(weights["linear.weight"], torch.eye(384))
    assert resolve_checkpoint("colbert-ir/colbertv2.0") == "colbert-ir/colbertv2.0"  # online names pass through


def test_exact_phrases_and_scope(base_index, paper_chunks, ckpt_cache):
    from indexes.colbert import ColBERTIndex

    index = ColBERTIndex(base_index, cache_dir=ckpt_cache)
    assert isinstance(index, Index)
    base = [c for a in BASE_IDS for c in paper_chunks[a]]
    assert len(index) == len(base)
    for phrase in ("rolling buffer cache", "grouped-query attention", "triple loss"):
        hits = index.search(phrase, 5)
        assert hits and hits[0][0] in containing(base, phrase), (phrase, hits[:2])
    scoped = index.search("sliding window attention", 5, arxiv_ids=["2305.13245"])
    assert scoped and all(cid.startswith("2305.13245") for cid, _ in scoped)
    assert index.search("attention", 5, arxiv_ids=["0000.00000"]) == []


def test_rerank_orders_only_the_candidates_with_the_search_scores(base_index, paper_chunks, ckpt_cache):
    from indexes.base import Reranker
    from indexes.colbert import ColBERTIndex

    index = ColBERTIndex(base_index, cache_dir=ckpt_cache)
    assert isinstance(index, Reranker)
    base = [c for a in BASE_IDS for c in paper_chunks[a]]
    phrase = "rolling buffer cache"
    wanted = containing(base, phrase)
    others = [c.id for c in paper_chunks["1910.01108"][:20]]
    ranked = index.rerank(phrase, others + sorted(wanted) + ["9999.99999v1-c0"])
    assert {cid for cid, _ in ranked} == set(others) | wanted  # the unknown id left out, nothing added
    assert ranked[0][0] in wanted
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    searched = dict(index.search(phrase, 5))
    shared = [cid for cid, _ in ranked if cid in searched]
    assert shared and all(abs(dict(ranked)[cid] - searched[cid]) < 1e-3 for cid in shared)  # exact MaxSim both ways
    assert index.rerank(phrase, []) == [] and index.rerank(phrase, ["9999.99999v1-c0"]) == []


def test_incremental_add_then_remove(base_index, paper_chunks, ckpt_cache, tmp_path):
    from indexes.colbert import ColBERTIndex

    index = open_copy(base_index, tmp_path, ckpt_cache)
    centroids_before = (index.path / index.info()["version"] / "centroids.pt").read_bytes()
    before = index.search("rolling buffer cache", 5)
    ppo = paper_chunks["1707.06347"]
    index.add(ppo)
    assert index.last_stats["op"] == "update"  # colbert-ai's IndexUpdater, not a rebuild
    assert (index.path / index.info()["version"] / "centroids.pt").read_bytes() == centroids_before
    hits = index.search("adaptive KL penalty coefficient", 5)
    assert hits[0][0] in containing(ppo, "adaptive KL penalty coefficient")
    after = index.search("rolling buffer cache", 5)
    assert after[:3] == before[:3]  # old passages keep their codes: same passages, same scores
    index.add(ppo)  # idempotent
    assert len(index) == sum(len(paper_chunks[a]) for a in BASE_IDS) + len(ppo)

    gqa = {c.id for c in paper_chunks["2305.13245"]}
    index.remove(sorted(gqa))
    assert index.last_stats["removed"] == len(gqa)
    for query in ("grouped-query attention", "uptraining multi-query checkpoints"):
        assert not gqa & {c for c, _ in index.search(query, 50)}
    assert index.search("grouped-query attention", 5, arxiv_ids=["2305.13245"]) == []
    # the change is on disk: a fresh instance agrees
    reopened = ColBERTIndex(index.path, cache_dir=ckpt_cache)
    assert len(reopened) == len(index)
    assert reopened.search("adaptive KL penalty coefficient", 3) == index.search("adaptive KL penalty coefficient", 3)


def test_persistence_across_processes(tmp_path, paper_chunks, ckpt_cache):
    chunks = paper_chunks["1910.01108"]
    jsonl = tmp_path / "chunks.jsonl"
    jsonl.write_text("".join(c.model_dump_json() + "\n" for c in chunks))
    path = tmp_path / "colbert"
    build = textwrap.dedent(f"""
        from pathlib import Path
        from foundation.types import Chunk
        from indexes.colbert import ColBERTIndex
        if __name__ == "__main__":
            chunks = [Chunk.model_validate_json(l) for l in Path({str(jsonl)!r}).read_text().splitlines()]
            ColBERTIndex(Path({str(path)!r}), cache_dir=Path({str(ckpt_cache)!r})).add(chunks)
    """)
    subprocess.run([sys.executable, "-c", build], cwd=ROOT, check=True, timeout=600)
    search = textwrap.dedent(f"""
        from pathlib import Path
        from indexes.colbert import ColBERTIndex
        if __name__ == "__main__":
            index = ColBERTIndex(Path({str(path)!r}), cache_dir=Path({str(ckpt_cache)!r}))
            print("TOP", index.search("triple loss", 1)[0][0])
    """)
    out = subprocess.run([sys.executable, "-c", search], cwd=ROOT, check=True, timeout=600, capture_output=True,
                         text=True).stdout
    top = [line.split()[1] for line in out.splitlines() if line.startswith("TOP ")]
    assert top and top[0] in containing(chunks, "triple loss")


def test_killed_build_leaves_old_index(base_index, paper_chunks, ckpt_cache, tmp_path):
    index = open_copy(base_index, tmp_path, ckpt_cache)
    expected = index.search("rolling buffer cache", 5)
    jsonl = tmp_path / "chunks.jsonl"
    jsonl.write_text("".join(c.model_dump_json() + "\n" for a in paper_chunks for c in paper_chunks[a]))
    # A full rebuild that is SIGKILLed after it has started encoding into its new folder.
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from foundation.types import Chunk
        from indexes.colbert import ColBERTIndex
        def progress(done, total):
            print("ENCODING", done, total, flush=True)
            time.sleep(60)
        if __name__ == "__main__":
            chunks = [Chunk.model_validate_json(l) for l in Path({str(jsonl)!r}).read_text().splitlines()]
            ColBERTIndex(Path({str(index.path)!r}), cache_dir=Path({str(ckpt_cache)!r})).rebuild(chunks, progress=progress)
    """)

    def half_made() -> None:
        assert list(index.path.glob(".build-*"))  # the new version is half made

    kill_at_marker(script, "ENCODING", ROOT, half_made)
    from indexes.colbert import ColBERTIndex

    survivor = ColBERTIndex(index.path, cache_dir=ckpt_cache)
    assert len(survivor) == sum(len(paper_chunks[a]) for a in BASE_IDS)
    assert survivor.search("rolling buffer cache", 5) == expected
    survivor.remove([expected[0][0]])  # the next writer cleans up the leftovers and works
    assert not list(index.path.glob(".build-*"))
    assert expected[0][0] not in {c for c, _ in survivor.search("rolling buffer cache", 5)}


def test_only_build_locks_no_live_process_holds_are_removed(tmp_path):
    from indexes.colbert.build_locks import clear_stale_build_locks

    stale, live = tmp_path / "dead_ext" / "lock", tmp_path / "busy_ext" / "lock"
    for lock in (stale, live):
        lock.parent.mkdir()
        lock.touch()
    holder = subprocess.Popen([sys.executable, "-c", f"f = open({str(live)!r}); print('open', flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert clear_stale_build_locks(tmp_path) == [stale]
        assert not stale.exists() and live.exists()
    finally:
        holder.kill()
        holder.wait()
    assert clear_stale_build_locks(tmp_path) == [live]  # its holder died: now it is a leftover too


def test_a_build_lock_left_by_a_killed_process_does_not_hang_search(base_index, ckpt_cache, tmp_path):
    """torch waits forever on an extension's `lock` file; a process killed mid-build leaves one (CI once hung
    90 minutes on it). Search in a fresh process must clear it, not wait."""
    from indexes.colbert.build_locks import extensions_root

    ext = tmp_path / "ext"
    built = extensions_root()
    for folder in (built.glob("*/*_cpp") if built.exists() else []):  # compiled already: copy, not rebuild
        shutil.copytree(folder, ext / folder.name, ignore=shutil.ignore_patterns("lock"))
    planted = [ext / name / "lock" for name in ("segmented_maxsim_cpp", "decompress_residuals_cpp")]
    for lock in planted:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    shutil.copytree(base_index, tmp_path / "colbert", symlinks=True)
    search = textwrap.dedent(f"""
        from pathlib import Path
        from indexes.colbert import ColBERTIndex
        if __name__ == "__main__":
            index = ColBERTIndex(Path({str(tmp_path / "colbert")!r}), cache_dir=Path({str(ckpt_cache)!r}))
            print("TOP", index.search("rolling buffer cache", 1)[0][0])
    """)
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(ext)}
    done = subprocess.run([sys.executable, "-c", search], cwd=ROOT, env=env, timeout=600, capture_output=True,
                          text=True)
    assert done.returncode == 0 and "TOP " in done.stdout, done.stderr[-2000:]
    assert "stale torch build lock" in done.stderr and not any(lock.exists() for lock in planted)


def test_blocked_nearest_centroids_give_the_stock_codes(base_index, ckpt_cache):
    """The index's own centroids and token vectors: the blocked step assigns every vector the centroid the
    stock colbert-ai step does (it compresses every vector of a build and of an update)."""
    import torch
    from colbert.indexing.codecs.residual import ResidualCodec
    from indexes.colbert.plaid import blocked_codes

    blocked_codes()
    index = open_copy(base_index, base_index.parent / "codes", ckpt_cache)
    codec = index._ranker.codec
    assert isinstance(codec, ResidualCodec) and ResidualCodec.compress_into_codes.blocked
    vectors = torch.cat([torch.from_numpy(v) for v in index._encode_texts(
        ["Grouped-query attention interpolates between multi-head and multi-query attention."] * 3 +
        ["DistilBERT keeps 97% of BERT's performance while being 40% smaller and 60% faster."] * 3)])
    noisy = torch.cat([vectors, (vectors.float() + 0.05 * torch.randn_like(vectors.float())).half()])
    noisy = noisy.repeat(400, 1)  # more than one block
    stock = ResidualCodec.compress_into_codes.stock(codec, noisy, out_device="cpu")
    assert len(noisy) > 1024 and torch.equal(codec.compress_into_codes(noisy, out_device="cpu"), stock)
