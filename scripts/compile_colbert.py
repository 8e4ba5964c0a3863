"""Setup step: compile colbert-ai's C++ extensions now (once per environment, 106 s on 2 cores), not on
a user's first search. Run by `make setup-app`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexes.colbert.plaid import compile_extensions  # noqa: E402

if __name__ == "__main__":
    start = time.perf_counter()
    print("[compile_colbert] colbert-ai's C++ extensions (compiled once per environment, ~2 min)", flush=True)
    compile_extensions()
    print(f"[compile_colbert] ready in {time.perf_counter() - start:.0f} s", flush=True)
