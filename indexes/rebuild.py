"""`doctor --repair` for damage at rest, before the consistency repair (`health.repair`) finishes the job.

1. The store: a damaged or lost store is set aside and restored from its backup (SQLite's online backup,
   taken after every successful write: indexes/integrity.py). Without a usable backup a new store is made
   and the papers the indexes name are parsed again from their PDFs (cache or mirror); if some cannot be,
   nothing else is touched: the indexes are never emptied because the store went missing.
2. Damaged indexes (chromadb, BM25, ColBERT): their folder is set aside and a fresh one started; the
   consistency repair refills it from the store's passages (dense re-encodes them).
3. Rows that fail their checksum are re-made from the backup's copy where that one is intact; otherwise
   their paper is parsed again.
"""
from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from foundation.config import Settings
from indexes.damage import damaged_indexes
from indexes.health import Issue
from indexes.inspect import held_papers
from indexes.integrity import backup_path, chunk_digest, file_problem, restore_store
from indexes.store import SELECT_CHUNK, chunk_from_row

_CHUNK_ID = re.compile(r"^(?P<paper>.+)v\d+-[0-9a-f]{12}$")


def set_aside(path: Path) -> Path:
    """Rename a damaged file or folder out of the way, kept for whoever wants to look at it."""
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    return target


def restore_store_file(settings: Settings, issues: Iterable[Issue]) -> tuple[list[str], set[str]]:
    """Step 1, before the library opens: (what was done, the papers to parse again)."""
    if not any(i.index == "store" and i.kind == "damaged" for i in issues):
        return [], set()
    path = settings.index_dir / "library.sqlite"
    try:
        return [restore_store(path)], set()
    except (FileNotFoundError, ValueError) as exc:
        held = set().union(*held_papers(settings).values())
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                set_aside(old)
        return [f"store: {exc}; a new store is made and the {len(held)} papers the indexes hold are parsed again "
                "from their PDFs"], held


def reset_damaged_indexes(library, issues: Iterable[Issue]) -> list[str]:
    """Step 2: every index found damaged (by inspection or while opening) starts again, empty."""
    names = {i.index for i in issues if i.kind == "damaged" and i.index in ("dense", "bm25", "colbert")}
    names |= set(damaged_indexes(library))
    actions = []
    for name in sorted(names):
        aside = library.reset_index(name)
        where = f" (the damaged files are kept in {aside})" if aside else ""
        actions.append(f"{name}: set the damaged index aside and started it again from the store{where}")
    return actions


def paper_of(chunk_id: str) -> str | None:
    m = _CHUNK_ID.match(chunk_id)
    return m.group("paper").replace("_", "/") if m else None


def remake_tampered(library) -> tuple[list[str], set[str]]:
    """Step 3: (what was done, papers to parse again)."""
    store = library.store
    ids = set(store.tampered_ids())
    if not ids:
        return [], set()
    restored = _rows_from_backup(store.path, ids)
    actions = []
    if restored:
        store.put_rows(restored)
        actions.append(f"store: re-made {len(restored)} passage rows that failed their checksum from the backup")
    rest = ids - {r[0] for r in restored}
    again: set[str] = set()
    for cid in sorted(rest):
        aid = paper_of(cid)
        store.remove_chunks([cid])
        library.drop_from_indexes([cid])
        if aid and store.paper(aid) is not None:
            again.add(aid)
    for aid in sorted(again):
        record = store.paper(aid)
        library.record_failure(record.paper, "a passage row failed its checksum: parsed again by doctor --repair")
    if rest:
        actions.append(f"store: dropped {len(rest)} passage rows that failed their checksum and had no intact "
                       f"backup; their papers are parsed again: {', '.join(sorted(again)) or '-'}")
    return actions, again


def _rows_from_backup(store_path: Path, ids: set[str]) -> list[tuple]:
    """The backup's rows of `ids` that still match their checksums."""
    source = backup_path(store_path)
    if file_problem(source):
        return []
    db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        rows = []
        wanted = sorted(ids)
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows += db.execute(f"{SELECT_CHUNK} WHERE id IN ({','.join('?' * len(part))})", part).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [r for r in rows if r[14] and r[14] == chunk_digest(chunk_from_row(r))]
