"""SQLite store of papers, their ingest status, and their chunks; the source of truth every index is built from."""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from foundation.types import PASSAGES_VERSION, Chunk, Paper, PaperRecord, PaperStatus
from indexes.integrity import CheckedConnection, backup_store, chunk_digest

SCHEMA_VERSION = 4

# Each entry upgrades the schema from version i to i+1; an index from a newer app is refused.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS papers (
        arxiv_id TEXT PRIMARY KEY, version INTEGER, title TEXT, authors TEXT, year INTEGER,
        abstract TEXT, pdf_path TEXT, status TEXT NOT NULL, reason TEXT DEFAULT '',
        n_chunks INTEGER DEFAULT 0, updated_at REAL
    );
    CREATE TABLE IF NOT EXISTS chunks (
        id TEXT PRIMARY KEY, arxiv_id TEXT NOT NULL, version INTEGER, section TEXT,
        page_start INTEGER, page_end INTEGER, char_start INTEGER, char_end INTEGER,
        text TEXT NOT NULL, n_tokens INTEGER, level INTEGER DEFAULT 0, children TEXT DEFAULT '[]',
        seq INTEGER DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS chunks_by_paper ON chunks(arxiv_id, level, seq);
    """,
    # 2: papers from disk and from the user's BibTeX / Zotero library: what they are known by (DOI, citation
    # key, an arXiv id printed on them), and every PDF content ingested, so the same file under another name
    # is one paper and an edited one a new version. Rows of older libraries read as arXiv papers.
    """
    ALTER TABLE papers ADD COLUMN doi TEXT DEFAULT '';
    ALTER TABLE papers ADD COLUMN citation_key TEXT DEFAULT '';
    ALTER TABLE papers ADD COLUMN eprint TEXT DEFAULT '';
    ALTER TABLE papers ADD COLUMN venue TEXT DEFAULT '';
    ALTER TABLE papers ADD COLUMN origin TEXT DEFAULT 'arxiv';
    ALTER TABLE papers ADD COLUMN content_hash TEXT DEFAULT '';
    CREATE INDEX IF NOT EXISTS papers_by_pdf ON papers(pdf_path);
    CREATE TABLE IF NOT EXISTS pdf_files (
        sha256 TEXT PRIMARY KEY, arxiv_id TEXT NOT NULL, version INTEGER, path TEXT, seen_at REAL
    );
    CREATE INDEX IF NOT EXISTS pdf_files_by_paper ON pdf_files(arxiv_id);
    """,
    # 3: a chunk's kind (text, or a table's rows); which PASSAGES_VERSION made a paper's passages (1: all before).
    """
    ALTER TABLE chunks ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
    ALTER TABLE papers ADD COLUMN passages INTEGER NOT NULL DEFAULT 1;
    """,
    # 4: each passage row carries a checksum of what it says (indexes/integrity.py); rows written before it
    # get theirs when this runs (`_fill_digests`).
    "ALTER TABLE chunks ADD COLUMN digest TEXT;",
]
CHUNK_COLUMNS = ("id, arxiv_id, version, section, page_start, page_end, char_start, char_end, text, n_tokens, level, "
                 "children, seq, kind, digest")
INSERT_CHUNK = f"INSERT OR REPLACE INTO chunks ({CHUNK_COLUMNS}) VALUES ({','.join('?' * 15)})"
SELECT_CHUNK = f"SELECT {CHUNK_COLUMNS} FROM chunks"
SEARCHABLE_COLUMNS = ", ".join(f"c.{name.strip()}" for name in CHUNK_COLUMNS.split(","))

# Named columns: INSERTs and SELECTs never depend on the order ALTER TABLE left them in.
_PAPER_COLUMNS = ("arxiv_id", "version", "title", "authors", "year", "abstract", "pdf_path", "status", "reason",
                  "n_chunks", "updated_at", "doi", "citation_key", "eprint", "venue", "origin", "content_hash",
                  "passages")
_PAPER_SELECT = "SELECT " + ", ".join(_PAPER_COLUMNS) + " FROM papers"
_PAPER_INSERT = (f"INSERT OR REPLACE INTO papers ({', '.join(_PAPER_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(_PAPER_COLUMNS))})")
_METADATA_COLUMNS = ("title", "authors", "year", "abstract", "pdf_path", "doi", "citation_key", "eprint", "venue",
                     "origin", "content_hash")


class IndexMismatch(RuntimeError):
    """The index on disk was built with other settings (embedder, chunking) or by a newer version."""


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Damage (a garbled or truncated file) anywhere below is StoreDamaged: one line, never a traceback.
        self._db = CheckedConnection(sqlite3.connect(str(path), timeout=30, check_same_thread=False), path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.tampered: set[str] = set()  # ids of rows read that no longer match their checksum
        self._migrate()

    # --- schema and settings
    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise IndexMismatch(
                f"{self.path} was written by a newer paper-assistant (schema {current} > {SCHEMA_VERSION}); upgrade the app"
            )
        if current == SCHEMA_VERSION:
            return
        with self._tx() as db:
            for version in range(current, SCHEMA_VERSION):
                db.executescript(MIGRATIONS[version])
            _fill_digests(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        """Record the settings that shape the index, or refuse if it was built with others."""
        row = self._db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None:
            with self._tx() as db:
                db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (json.dumps(fingerprint, sort_keys=True),))
            return
        recorded = json.loads(row[0])
        if recorded != fingerprint:
            diff = {k: (recorded.get(k), fingerprint.get(k)) for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k)}
            detail = ", ".join(f"{k}: index has {a!r}, settings ask {b!r}" for k, (a, b) in sorted(diff.items()))
            raise IndexMismatch(
                f"The index in {self.path.parent} was built with different settings ({detail}). "
                "Use the same settings, or point --home at a new directory to build another index."
            )

    @contextmanager
    def _tx(self) -> Iterator[CheckedConnection]:
        try:
            yield self._db
            self._db.commit()
        except BaseException:
            self._db.rollback()
            raise

    # --- papers
    def upsert_paper(self, paper: Paper, status: PaperStatus, reason: str = "", n_chunks: int | None = None) -> None:
        with self._tx() as db:
            old = db.execute("SELECT n_chunks FROM papers WHERE arxiv_id=?", (paper.arxiv_id,)).fetchone()
            chunks = n_chunks if n_chunks is not None else (old[0] if old else 0)
            db.execute(_PAPER_INSERT, _paper_row(paper, status, reason, chunks))

    def update_metadata(self, paper: Paper) -> None:
        """Title, authors, file, DOI, citation key ... of a paper as `paper` has them; its version, status and
        chunks stay (library metadata for a paper already indexed re-indexes nothing)."""
        values = _paper_values(paper)
        with self._tx() as db:
            db.execute(f"UPDATE papers SET {', '.join(f'{c}=?' for c in _METADATA_COLUMNS)}, updated_at=? "
                       "WHERE arxiv_id=?", [values[c] for c in _METADATA_COLUMNS] + [time.time(), paper.arxiv_id])

    def set_status(self, arxiv_id: str, status: PaperStatus, reason: str = "", n_chunks: int | None = None) -> None:
        with self._tx() as db:
            if n_chunks is None:
                db.execute("UPDATE papers SET status=?, reason=?, updated_at=? WHERE arxiv_id=?",
                           (status.value, reason, time.time(), arxiv_id))
            else:
                db.execute("UPDATE papers SET status=?, reason=?, n_chunks=?, updated_at=? WHERE arxiv_id=?",
                           (status.value, reason, n_chunks, time.time(), arxiv_id))

    def stage_paper(self, paper: Paper, chunks: Sequence[Chunk]) -> list[str]:
        """A new paper (or a re-chunked one at its current version): the row, pending, and its leaf chunks in
        one transaction, so a pending paper always has all its chunks in the store (a killed ingest can be
        finished from them). Returns the ids of the paper's leaves that were dropped."""
        with self._tx() as db:
            db.execute(_PAPER_INSERT, _paper_row(paper, PaperStatus.pending, "", len(chunks)))
            old = {r[0] for r in db.execute("SELECT id FROM chunks WHERE arxiv_id=? AND level=0", (paper.arxiv_id,))}
            stale = sorted(old - {c.id for c in chunks})
            db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in stale])
            _insert_leaves(db, chunks)
        return stale

    def stage_version(self, chunks: Sequence[Chunk]) -> None:
        """Leaves of a new version of a paper that is ok at another one: stored beside the old version,
        unsearchable (their version is not the paper's) until `promote_version`."""
        with self._tx() as db:
            _insert_leaves(db, chunks)

    def promote_version(self, paper: Paper, n_chunks: int) -> list[str]:
        """Make `paper` (its version) the paper's current one, ok, and drop the leaves of every other
        version, in one transaction; returns the dropped ids so the indexes can drop them too."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE arxiv_id=? AND level=0 AND version IS NOT ?",
                                            (paper.arxiv_id, paper.version))]
            db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in ids])
            db.execute(_PAPER_INSERT, _paper_row(paper, PaperStatus.ok, "", n_chunks))
        return ids

    def drop_leaves(self, arxiv_id: str, version: int | None = None, *, other_versions: bool = False) -> list[str]:
        """Delete a paper's leaves: all of them, those of `version`, or (other_versions) those of every
        version but `version`. Returns the deleted ids."""
        where, args = "arxiv_id=? AND level=0", [arxiv_id]
        if version is not None or other_versions:
            where += " AND version IS NOT ?" if other_versions else " AND version IS ?"
            args.append(version)
        with self._tx() as db:
            ids = [r[0] for r in db.execute(f"SELECT id FROM chunks WHERE {where}", args)]
            db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in ids])
        return ids

    def paper(self, arxiv_id: str) -> PaperRecord | None:
        row = self._db.execute(f"{_PAPER_SELECT} WHERE arxiv_id=?", (arxiv_id,)).fetchone()
        return _record(row) if row else None

    def papers(self, status: PaperStatus | None = None) -> list[PaperRecord]:
        if status is None:
            rows = self._db.execute(f"{_PAPER_SELECT} ORDER BY arxiv_id").fetchall()
        else:
            rows = self._db.execute(f"{_PAPER_SELECT} WHERE status=? ORDER BY arxiv_id", (status.value,)).fetchall()
        return [_record(r) for r in rows]

    def papers_at_path(self, path: str) -> list[PaperRecord]:
        """Papers whose PDF is (or was last read from) this file."""
        return [_record(r) for r in self._db.execute(f"{_PAPER_SELECT} WHERE pdf_path=? ORDER BY arxiv_id", (path,))]

    # --- PDF contents seen: the same file under two names is one paper, an edited one a new version
    def record_pdf(self, sha256: str, arxiv_id: str, version: int | None, path: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO pdf_files VALUES (?,?,?,?,?)",
                       (sha256, arxiv_id, version, path, time.time()))

    def pdf_owner(self, sha256: str) -> tuple[str, int | None, str] | None:
        """(paper id, version, path first read from) of the paper ingested from this PDF content, if any."""
        row = self._db.execute("SELECT arxiv_id, version, path FROM pdf_files WHERE sha256=?", (sha256,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def delete_paper(self, arxiv_id: str) -> list[str]:
        """Remove a paper and its chunks; returns the removed chunk ids so indexes can drop them."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE arxiv_id=?", (arxiv_id,))]
            db.execute("DELETE FROM chunks WHERE arxiv_id=?", (arxiv_id,))
            db.execute("DELETE FROM papers WHERE arxiv_id=?", (arxiv_id,))
            db.execute("DELETE FROM pdf_files WHERE arxiv_id=?", (arxiv_id,))
        return ids

    # --- chunks
    def replace_chunks(self, arxiv_id: str, chunks: Sequence[Chunk], level: int = 0) -> list[str]:
        """Make chunks (at this level) of a paper exactly `chunks`; returns ids that were dropped."""
        with self._tx() as db:
            old = {r[0] for r in db.execute("SELECT id FROM chunks WHERE arxiv_id=? AND level=?", (arxiv_id, level))}
            new = {c.id for c in chunks}
            stale = sorted(old - new)
            db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in stale])
            db.executemany(INSERT_CHUNK, [_row(c, seq) for seq, c in enumerate(chunks)])
        return stale

    def add_chunks(self, chunks: Sequence[Chunk]) -> None:
        with self._tx() as db:
            db.executemany(INSERT_CHUNK, [_row(c, c.char_start) for c in chunks])

    def remove_chunks(self, chunk_ids: Sequence[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in chunk_ids])

    def chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"{SELECT_CHUNK} WHERE id IN ({','.join('?' * len(part))})"
            out.update({c.id: c for c in self._verified(self._db.execute(q, part))})
        return out

    def chunks_of(self, arxiv_id: str, level: int | None = 0) -> list[Chunk]:
        if level is None:
            rows = self._db.execute(f"{SELECT_CHUNK} WHERE arxiv_id=? ORDER BY level, seq", (arxiv_id,))
        else:
            rows = self._db.execute(f"{SELECT_CHUNK} WHERE arxiv_id=? AND level=? ORDER BY seq", (arxiv_id, level))
        return list(self._verified(rows))

    def iter_chunks(self, level: int | None = 0) -> Iterator[Chunk]:
        """All chunks in a stable order (paper, then position), for building other indexes."""
        if level is None:
            rows = self._db.execute(f"{SELECT_CHUNK} ORDER BY arxiv_id, level, seq")
        else:
            rows = self._db.execute(f"{SELECT_CHUNK} WHERE level=? ORDER BY arxiv_id, seq", (level,))
        yield from self._verified(rows)

    def neighbours(self, chunk_id: str, before: int = 1, after: int = 1) -> list[Chunk]:
        """The chunk with its neighbours in reading order within the same paper."""
        row = self._db.execute("SELECT arxiv_id, level, seq FROM chunks WHERE id=?", (chunk_id,)).fetchone()
        if not row:
            return []
        rows = self._db.execute(
            f"{SELECT_CHUNK} WHERE arxiv_id=? AND level=? AND seq BETWEEN ? AND ? ORDER BY seq",
            (row[0], row[1], row[2] - before, row[2] + after),
        )
        return list(self._verified(rows))

    def iter_searchable(self, level: int = 0) -> Iterator[Chunk]:
        """Chunks that search may return: their paper is ok and they are of its current version. What the
        secondary indexes are synced from, so a pending, failed or superseded paper never reaches them."""
        rows = self._db.execute(
            f"SELECT {SEARCHABLE_COLUMNS} FROM chunks c JOIN papers p ON p.arxiv_id = c.arxiv_id "
            "WHERE c.level=? AND p.status='ok' AND c.version IS p.version ORDER BY c.arxiv_id, c.seq", (level,))
        yield from self._verified(rows)

    def count_searchable(self, level: int = 0) -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM chunks c JOIN papers p ON p.arxiv_id = c.arxiv_id "
            "WHERE c.level=? AND p.status='ok' AND c.version IS p.version", (level,)).fetchone()[0]

    def leaf_ids(self) -> dict[str, tuple[str, int | None]]:
        """Every leaf's id -> (arxiv id, version), for the consistency check."""
        return {r[0]: (r[1], r[2]) for r in self._db.execute("SELECT id, arxiv_id, version FROM chunks WHERE level=0")}

    def all_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM chunks")}

    def delete_failed(self) -> list[str]:
        """Drop every failed paper's row (and any chunk left under it); returns their arXiv ids."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT arxiv_id FROM papers WHERE status='failed' ORDER BY arxiv_id")]
            db.executemany("DELETE FROM chunks WHERE arxiv_id=?", [(i,) for i in ids])
            db.executemany("DELETE FROM papers WHERE arxiv_id=?", [(i,) for i in ids])
            db.executemany("DELETE FROM pdf_files WHERE arxiv_id=?", [(i,) for i in ids])
        return ids

    def count_chunks(self, level: int | None = 0) -> int:
        if level is None:
            return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM chunks WHERE level=?", (level,)).fetchone()[0]

    def _verified(self, rows) -> Iterator[Chunk]:
        """Chunks of these rows, leaving out (and noting in `tampered`) a row that no longer matches its checksum:
        a passage whose text or paper was changed is never shown, cited or indexed as if it were the paper's."""
        for r in rows:
            chunk = chunk_from_row(r)
            if r[14] is not None and r[14] != chunk_digest(chunk):
                self.tampered.add(chunk.id)
                continue
            yield chunk

    def tampered_ids(self) -> list[str]:
        """Every row whose checksum does not match what it says (the whole table: doctor's check)."""
        return sorted(chunk_from_row(r).id for r in self._db.execute(SELECT_CHUNK)
                      if r[14] is None or r[14] != chunk_digest(chunk_from_row(r)))

    def put_rows(self, rows: Sequence[tuple]) -> None:
        """Write raw rows (all columns, as SELECT_CHUNK reads them): a repair copying rows from the backup."""
        with self._tx() as db:
            db.executemany(INSERT_CHUNK, rows)

    def backup(self):
        """An online backup of the whole store beside it (indexes/integrity.py): what a repair restores from."""
        return backup_store(self._db.raw, self.path)

    def close(self) -> None:
        self._db.close()


def _insert_leaves(db: CheckedConnection, chunks: Sequence[Chunk]) -> None:
    db.executemany(INSERT_CHUNK, [_row(c, seq) for seq, c in enumerate(chunks)])


def _row(c: Chunk, seq: int) -> tuple:
    return (c.id, c.arxiv_id, c.version, c.section, c.page_start, c.page_end, c.char_start, c.char_end, c.text,
            c.n_tokens, c.level, json.dumps(list(c.children)), seq, c.kind, chunk_digest(c))


def _fill_digests(db: CheckedConnection) -> None:
    rows = db.execute(f"{SELECT_CHUNK} WHERE digest IS NULL").fetchall()
    db.executemany("UPDATE chunks SET digest=? WHERE id=?", [(chunk_digest(chunk_from_row(r)), r[0]) for r in rows])


def _paper_values(paper: Paper) -> dict[str, Any]:
    return {"arxiv_id": paper.arxiv_id, "version": paper.version, "title": paper.title,
            "authors": json.dumps(list(paper.authors)), "year": paper.year, "abstract": paper.abstract,
            "pdf_path": paper.pdf_path, "doi": paper.doi, "citation_key": paper.citation_key, "eprint": paper.eprint,
            "venue": paper.venue, "origin": paper.origin, "content_hash": paper.content_hash}


def _paper_row(paper: Paper, status: PaperStatus, reason: str, n_chunks: int) -> tuple:
    # The row is written with its passages (stage, promote) or with none (failed): either way this code's.
    values = {**_paper_values(paper), "status": status.value, "reason": reason, "n_chunks": n_chunks,
              "updated_at": time.time(), "passages": PASSAGES_VERSION}
    return tuple(values[c] for c in _PAPER_COLUMNS)


def _record(row: tuple) -> PaperRecord:
    v = dict(zip(_PAPER_COLUMNS, row))
    paper = Paper(arxiv_id=v["arxiv_id"], version=v["version"], title=v["title"] or "",
                  authors=tuple(json.loads(v["authors"] or "[]")), year=v["year"], abstract=v["abstract"] or "",
                  pdf_path=v["pdf_path"], doi=v["doi"] or "", citation_key=v["citation_key"] or "",
                  eprint=v["eprint"] or "", venue=v["venue"] or "", origin=v["origin"] or "arxiv",
                  content_hash=v["content_hash"] or "")
    return PaperRecord(paper=paper, status=PaperStatus(v["status"]), reason=v["reason"] or "",
                       n_chunks=v["n_chunks"] or 0, updated_at=v["updated_at"] or 0.0, passages=v["passages"])


def chunk_from_row(row: tuple) -> Chunk:
    return Chunk(id=row[0], arxiv_id=row[1], version=row[2], section=row[3] or "", page_start=row[4], page_end=row[5],
                 char_start=row[6], char_end=row[7], text=row[8], n_tokens=row[9] or 0, level=row[10] or 0,
                 children=tuple(json.loads(row[11] or "[]")), kind=row[13])
