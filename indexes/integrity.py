"""The store's defences against damage at rest: a checksum per passage row, a connection that turns a damaged
file into one clear error, and an online backup kept beside the store.

- `chunk_digest`: a row whose text, paper, pages or place were changed by hand (or by a bad sector) no longer
  matches the digest written with it; the store leaves such rows out of every read and `doctor` names them.
- `CheckedConnection`: sqlite3 raises "file is not a database" or "database disk image is malformed" from any
  query that touches a garbled or truncated page, anywhere in the program; here each becomes `StoreDamaged`,
  whose message is the one line every command prints.
- `backup_store` / `restore_store`: SQLite's online backup API (consistent while readers run), written to a
  temporary file and renamed, so a kill mid-backup leaves the previous backup whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from foundation.types import Chunk

REPAIR = "run `paper-assistant doctor --repair`"
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "disk i/o error", "database or disk is full")


class StoreDamaged(RuntimeError):
    """The SQLite store cannot be read; the message names the file and what sqlite said, and the repair."""

    def __init__(self, path: Path | str, detail: str):
        self.path, self.detail = Path(path), detail
        super().__init__(f"the library's store {path} is damaged ({detail}): {REPAIR}")


def is_damage(exc: sqlite3.Error) -> bool:
    """A damaged file, as opposed to a busy one ("database is locked") or a bad query."""
    text = str(exc).lower()
    return any(word in text for word in _DAMAGE_WORDS) or type(exc) is sqlite3.DatabaseError


def chunk_digest(chunk: Chunk) -> str:
    """What a passage row must still say: its id, paper, version, section, place and text."""
    fields = [chunk.id, chunk.arxiv_id, chunk.version, chunk.section, chunk.page_start, chunk.page_end,
              chunk.char_start, chunk.char_end, chunk.level, list(chunk.children), chunk.text]
    return hashlib.sha1(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


class CheckedCursor:
    def __init__(self, cursor: sqlite3.Cursor, owner: "CheckedConnection"):
        self._cursor, self._owner = cursor, owner

    def __iter__(self) -> Iterator[tuple]:
        rows = iter(self._cursor)
        while True:
            try:
                row = self._owner.call(next, rows)
            except StopIteration:
                return
            yield row

    def fetchone(self) -> Any:
        return self._owner.call(self._cursor.fetchone)

    def fetchall(self) -> list[Any]:
        return self._owner.call(self._cursor.fetchall)


class CheckedConnection:
    """The parts of sqlite3.Connection the store uses; damage anywhere is `StoreDamaged`."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.raw, self.path = db, path

    def call(self, fn, *args):
        try:
            return fn(*args)
        except StopIteration:
            raise
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise StoreDamaged(self.path, str(exc)) from None
            raise

    def execute(self, sql: str, args: Any = ()) -> CheckedCursor:
        return CheckedCursor(self.call(self.raw.execute, sql, args), self)

    def executemany(self, sql: str, rows: Any) -> CheckedCursor:
        return CheckedCursor(self.call(self.raw.executemany, sql, rows), self)

    def executescript(self, script: str) -> CheckedCursor:
        return CheckedCursor(self.call(self.raw.executescript, script), self)

    def commit(self) -> None:
        self.call(self.raw.commit)

    def rollback(self) -> None:
        self.call(self.raw.rollback)

    def close(self) -> None:
        self.raw.close()


def backup_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".backup")


def backup_store(db: sqlite3.Connection, store_path: Path) -> Path:
    """Copy the live store into its backup file beside it (online: other readers may run meanwhile)."""
    target = backup_path(store_path)
    _copy_database(db, target, f".{target.name}.{os.getpid()}.tmp")
    return target


def _copy_database(db: sqlite3.Connection, target: Path, tmp_name: str) -> None:
    """SQLite's online backup of `db` into a temporary file beside `target`, then swapped in whole: a reader
    never sees half a copy."""
    tmp = target.with_name(tmp_name)
    tmp.unlink(missing_ok=True)
    copy = sqlite3.connect(str(tmp))
    try:
        db.backup(copy)
    finally:
        copy.close()
    os.replace(tmp, target)


def file_problem(path: Path) -> str | None:
    """What is wrong with an SQLite file, read-only (None when sqlite's integrity check passes)."""
    if not path.exists():
        return "missing"
    if path.stat().st_size == 0:
        return "empty file"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check(5)")]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows)[:300]


def restore_store(store_path: Path) -> str:
    """Put the backup in the damaged or missing store's place (the damaged file is kept aside, renamed);
    returns what was done. Raises FileNotFoundError / ValueError when there is no usable backup."""
    source = backup_path(store_path)
    problem = file_problem(source)
    if problem == "missing":
        raise FileNotFoundError(f"no backup of the store ({source})")
    if problem:
        raise ValueError(f"the store's backup {source} is damaged too ({problem})")
    kept = None
    for suffix in ("", "-wal", "-shm"):
        old = store_path.with_name(store_path.name + suffix)
        if old.exists():
            aside = old.with_name(old.name + ".damaged")
            os.replace(old, aside)
            kept = kept or aside
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        _copy_database(src, store_path, f".{store_path.name}.restore.tmp")
    finally:
        src.close()
    return f"store: restored from its backup {source}" + (f" (the damaged file is kept as {kept})" if kept else "")
