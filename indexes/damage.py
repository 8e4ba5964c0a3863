"""Damage at rest, survived: an index whose files are truncated, garbled or gone must not take the library down.

`Guarded` wraps an index (chromadb's dense index, BM25, ColBERT). A failure to open or read it marks it
damaged: searches then answer as an empty index would (hybrid runs without it and says so; a search of that
mode alone exits 2 with one line), writes to it are skipped (the index is rebuilt from the store by
`doctor --repair`), and `damage` says what broke, for every command's warnings and `doctor`. The dense
index is the exception for writes: a paper cannot be ok without its vectors, so adding to a damaged dense
index fails the paper with that reason. The deep, file-by-file inspection `doctor` runs is in
indexes/inspect.py; the repair in indexes/rebuild.py.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from indexes.integrity import REPAIR, StoreDamaged
from indexes.store import IndexMismatch

log = logging.getLogger(__name__)

# What an index's reads answer once it is damaged: the empty index's answer.
EMPTY_READS: dict[str, Callable[[], Any]] = {
    "search": list, "search_vector": list, "rerank": list, "chunk_ids": list, "ids_of": list, "count": int,
    "all_ids": dict, "vectors": dict, "idf": dict,
}
SKIPPED_WRITES = ("remove", "stage", "clear")


class IndexDamaged(RuntimeError):
    """A write that cannot go on: the index it needs is damaged."""


def describe(exc: BaseException) -> str:
    """A load failure in a few words, naming the file where the error knows it."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename} is missing"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _passes_through(exc: BaseException) -> bool:
    """Errors that are not damage: settings that do not fit the index, a broken store, a user's ctrl+c."""
    from foundation.locks import LockHeld

    return isinstance(exc, (IndexMismatch, StoreDamaged, LockHeld, KeyboardInterrupt, SystemExit, GeneratorExit))


class Guarded:
    """`index` (or what `open_index()` makes) behind a guard; reads and writes as described above."""

    def __init__(self, name: str, open_index: Callable[[], Any], *, path=None, writes_fail: tuple[str, ...] = ()):
        self.name, self.path = name, path
        self.damage: str | None = None
        self._writes_fail = writes_fail
        self.inner: Any = None
        try:
            self.inner = open_index()
        except BaseException as exc:  # noqa: BLE001 (chromadb's Rust side raises PanicException, a BaseException)
            if _passes_through(exc):
                raise
            self._broke(exc)
        if self.inner is not None:
            self.path = getattr(self.inner, "path", path)
            if callable(getattr(self.inner, "rerank", None)):  # a Reranker only if the index is one
                self.rerank = self._call("rerank")

    def _broke(self, exc: BaseException) -> None:
        if self.damage is None:
            self.damage = describe(exc)
            log.debug("the %s index is damaged: %s", self.name, self.damage)  # the front end says it, once

    def message(self) -> str:
        return f"the {self.name} index is damaged ({self.damage}): {self.name} search is unavailable; {REPAIR}"

    def _call(self, method: str) -> Callable[..., Any]:
        def guarded(*args, **kwargs):
            if self.damage is None:
                try:
                    return getattr(self.inner, method)(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 (see __init__)
                    if _passes_through(exc):
                        raise
                    self._broke(exc)
            if method in self._writes_fail:
                raise IndexDamaged(self.message())
            if method in EMPTY_READS:
                return EMPTY_READS[method]()
            return None  # a skipped write

        guarded.__name__ = method
        return guarded

    def __getattr__(self, attr: str) -> Any:
        if attr == "rerank":  # set in __init__ when the index has it: BM25 must not pass for a Reranker
            raise AttributeError(attr)
        if attr in EMPTY_READS or attr in SKIPPED_WRITES or attr in self._writes_fail or attr == "add":
            return self._call(attr)
        if self.inner is None:
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def __len__(self) -> int:
        if self.damage is None:
            try:
                return len(self.inner)
            except TypeError:
                return len(self._call("chunk_ids")())
            except BaseException as exc:  # noqa: BLE001
                if _passes_through(exc):
                    raise
                self._broke(exc)
        return 0


def damaged_indexes(library) -> dict[str, str]:
    """Index name -> what is damaged, for the indexes of `library` known to be damaged so far."""
    out = {}
    for name, index in {"dense": library.dense, **library.extra_indexes}.items():
        damage = getattr(index, "damage", None)
        if damage:
            out[name] = damage
    return out
