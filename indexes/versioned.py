"""A folder of index versions swapped in atomically: what makes BM25 and ColBERT writes crash-safe."""
from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path

from foundation.locks import exclusive_lock


class VersionedDir:
    """A folder whose live content is the version folder named in ``CURRENT``.

    Writers take the lock, build a fresh ``.build-*`` folder, then `commit` it: it is renamed to
    ``v<n>`` and ``CURRENT`` is replaced atomically (os.replace). Readers read ``CURRENT`` and load
    that folder. A writer killed half-way leaves only a ``.build-*`` folder, removed by the next writer.
    The previous version is kept one generation so a reader loading it during a swap still finds it.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def current_name(self) -> str | None:
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def current(self) -> Path | None:
        name = self.current_name()
        if name is None:
            return None
        path = self.root / name
        return path if path.is_dir() else None

    def lock(self):
        """Exclusive writer lock (advisory, across processes); released if the process dies."""
        return exclusive_lock(self.root / ".lock")

    def new_build(self) -> Path:
        """A fresh folder to build the next version in (call while holding the lock)."""
        self.cleanup()
        path = self.root / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    @contextlib.contextmanager
    def building(self):
        """`new_build()`, removed again when the block raises (a killed process leaves it to `cleanup`)."""
        build = self.new_build()
        try:
            yield build
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise

    def commit(self, build: Path) -> Path:
        """Make `build` the live version; returns its final path (call while holding the lock)."""
        _fsync_tree(build)
        previous = self.current_name()
        n = 1 + max([int(p.name[1:]) for p in self.root.glob("v*") if p.name[1:].isdigit()], default=0)
        final = self.root / f"v{n:06d}"
        os.replace(build, final)
        tmp = self.root / f".CURRENT.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w") as fh:
            fh.write(final.name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.pointer)
        _fsync_dir(self.root)
        for old in self.root.glob("v*"):
            if old.name not in (final.name, previous) and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return final

    def load_current(self, load, empty) -> None:
        """Call load(folder) on the live version, or empty() when there is none; a writer swapping versions
        meanwhile makes the folder vanish, so read the pointer again (a few times)."""
        for attempt in range(3):
            folder = self.current()
            if folder is None:
                empty()
                return
            try:
                load(folder)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def cleanup(self) -> None:
        """Remove leftovers of killed writers (call while holding the lock)."""
        for junk in list(self.root.glob(".build-*")) + list(self.root.glob(".CURRENT.*")):
            if junk.is_dir():
                shutil.rmtree(junk, ignore_errors=True)
            else:
                junk.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))



