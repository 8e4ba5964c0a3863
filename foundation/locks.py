"""Advisory file locks across processes (released by the kernel if the holder dies): one helper for the
index writers, the tree builder and the model server's starter."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class LockHeld(RuntimeError):
    """A non-blocking lock attempt found another process holding the lock."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is locked by pid {pid or '?'}")
        self.path = path
        self.pid = pid


def _pid_in(fh) -> int | None:
    fh.seek(0)
    text = fh.read().strip()
    return int(text) if text.isdigit() else None


@contextmanager
def exclusive_lock(path: Path, blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing); the holder's pid is written into it.
    Without blocking, a lock held elsewhere raises LockHeld at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(path, _pid_in(fh)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lock_holder(path: Path) -> int | None:
    """Pid of the process holding the lock on `path` (-1 if it did not say), or None when it is free."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fh) or -1
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None
