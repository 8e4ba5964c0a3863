"""colbert-ai compiles its C++ scorers with torch on first use, guarded by a `lock` file in the build folder
(torch's FileBaton, which keeps the file open while it builds). A process killed mid-build leaves the file behind
and every later load waits on it forever: CI hung for 90 minutes on one. A lock no live process holds open is
such a leftover and is removed."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def extensions_root() -> Path:
    """Where torch builds extensions: $TORCH_EXTENSIONS_DIR, else its default (~/.cache/torch_extensions)."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root)
    from torch.utils.cpp_extension import get_default_build_root

    return Path(get_default_build_root())


def files_held_open() -> set[str] | None:
    """Every path some process (that we may inspect) has open; None where /proc cannot tell."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    held = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
    return held


def clear_stale_build_locks(root: Path | None = None) -> list[Path]:
    """Remove build locks left by dead processes under `root`; returns what was removed."""
    root = root or extensions_root()
    # with TORCH_EXTENSIONS_DIR: <root>/<ext>/lock; by default: <root>/<py311_cpu>/<ext>/lock
    locks = [*root.glob("*/lock"), *root.glob("*/*/lock")]
    if not locks:
        return []
    held = files_held_open()
    if held is None:
        return []
    removed = []
    for lock in locks:
        if str(lock.resolve()) in held:
            continue
        try:
            lock.unlink()
        except FileNotFoundError:
            continue
        log.warning("removed a stale torch build lock left by a killed process: %s", lock)
        removed.append(lock)
    return removed
