"""Write the offline ColBERT checkpoint (MiniLM, identity projection) and compile colbert-ai's C++ extensions.

    python scripts/make_colbert_checkpoint.py [--cache-dir DIR] [--no-extensions]

ColBERTIndex does both on first use; running this once at setup moves that cost (the four
extensions took ~100 s of CPU to compile here, cached under ~/.cache/torch_extensions or
$TORCH_EXTENSIONS_DIR) out of the first search or test. Prints the checkpoint folder.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def compile_extensions() -> float:
    t0 = time.perf_counter()
    from colbert.modeling.colbert import ColBERT
    from colbert.search.index_storage import IndexScorer
    from colbert.search.strided_tensor import StridedTensor

    ColBERT.try_load_torch_extensions(use_gpu=False)
    IndexScorer.try_load_torch_extensions(use_gpu=False)
    StridedTensor.try_load_torch_extensions(use_gpu=False)
    return time.perf_counter() - t0


def main() -> None:
    from indexes.colbert.checkpoint import OFFLINE_CHECKPOINT, resolve_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="Folder for the checkpoint (default: ColBERTIndex's)")
    parser.add_argument("--no-extensions", action="store_true", help="Only write the checkpoint")
    args = parser.parse_args()
    print(resolve_checkpoint(OFFLINE_CHECKPOINT, args.cache_dir))
    if not args.no_extensions:
        print(f"colbert-ai C++ extensions ready in {compile_extensions():.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
