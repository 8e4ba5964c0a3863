"""What a ColBERT version folder says beside colbert-ai's files: pids.json (chunk and arXiv id per passage
id, null once removed), texts.jsonl (a rebuild without the store) and manifest.json."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from foundation.types import Chunk


def write_meta(build: Path, ids: list, arxiv: list, texts_lines: list[str], manifest: dict) -> None:
    (build / "pids.json").write_text(json.dumps({"ids": ids, "arxiv_ids": arxiv}))
    with open(build / "texts.jsonl", "w") as fh:
        fh.writelines(texts_lines)
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2))


def build_manifest(identity: dict, checkpoint_path: str, provenance: str, passages: int, metadata: dict,
                   reason: str, seconds: float, shared: bool) -> dict:
    """The manifest of a full build; metadata: colbert-ai's metadata.json of the build."""
    now = time.time()
    return {**identity, "checkpoint_path": checkpoint_path, "checkpoint_provenance": provenance,
            "num_passages": passages, "num_embeddings": metadata["num_embeddings"],
            "embeddings_at_build": metadata["num_embeddings"], "num_partitions": metadata["num_partitions"],
            "built_at": now, "updated_at": now, "build_reason": reason, "build_seconds": round(seconds, 2),
            "encoding": "shared" if shared else "colbert-ai"}


def after_update(old: Path, ids: Sequence, arxiv: Sequence, new: Sequence[Chunk],
                 removed: Sequence[int]) -> tuple[list, list, list[str]]:
    """(ids, arxiv ids, texts.jsonl lines) of a version made from `old` by removing passage ids and appending
    `new`: removed ones keep their place as null (passage ids never move)."""
    ids = list(ids) + [c.id for c in new]
    arxiv = list(arxiv) + [c.arxiv_id for c in new]
    texts = (old / "texts.jsonl").read_text().splitlines(keepends=True)
    for p in removed:
        ids[p] = arxiv[p] = None
        texts[p] = json.dumps("") + "\n"
    return ids, arxiv, texts + [json.dumps(c.text) + "\n" for c in new]


def live_passages(folder: Path | None, ids: Sequence, arxiv: Sequence) -> list[tuple[str, str, str]]:
    """(chunk id, arXiv id, text) of the passages a version folder still holds."""
    if folder is None or not (folder / "texts.jsonl").exists():
        return []
    texts = [json.loads(line) for line in (folder / "texts.jsonl").read_text().splitlines()]
    return [(cid, aid, t) for cid, aid, t in zip(ids, arxiv, texts) if cid is not None]
