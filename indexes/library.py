"""The library: the SQLite store (source of truth) and every index built from it, kept in step.

The invariant: a chunk is searchable in any index iff its paper is `ok` in the store at that paper's
current version. Writes keep it: a new paper is staged (row pending + all its chunks, one transaction),
embedded, then marked ok; a new version of an ok paper is staged beside the old one and swapped in by one
transaction (`promote_version`), so a failed or killed upgrade leaves the old version searchable; the
secondary indexes (BM25, ColBERT) are synced only from searchable chunks. Reads filter by the same rule
(`searchable`). Chunk ids are stable and writes are upserts, so a killed ingest is finished by the next
run without duplicates; `indexes.health` checks the whole invariant and repairs what a kill left.
"""
from __future__ import annotations

import errno
import importlib.util
import logging
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from foundation.config import HomeNotWritable, Settings
from foundation.faults import fault_point
from foundation.locks import LockHeld, exclusive_lock, lock_holder
from foundation.types import PASSAGES_VERSION, Chunk, Paper, PaperRecord, PaperStatus, ProgressEvent
from indexes.base import Embedder, Index
from indexes.bm25 import BM25Index
from indexes.colbert import ColBERTIndex  # colbert-ai itself is imported when the index is first used
from indexes.damage import Guarded
from indexes.integrity import StoreDamaged
from indexes.dense import DenseIndex
from indexes.health import quick_check
from indexes.raptor import CORPUS_ID
from indexes.store import Store

Progress = Callable[[ProgressEvent], None]
log = logging.getLogger(__name__)


def _quiet(_: ProgressEvent) -> None:
    pass


# Indexes whose package comes with an extra: (the module it imports, the extra that installs it).
INDEX_EXTRAS = {"colbert": ("colbert", "colbert")}


def uninstalled_indexes(settings: Settings) -> dict[str, str]:
    """The indexes settings ask for whose extra is not installed, each with a line saying what to do."""
    return {name: f"the {name} index is off: its package is not installed (pip install 'paper-assistant[{extra}]', "
                  f"or leave {name} out of the `indexes` setting)"
            for name in settings.indexes if name in INDEX_EXTRAS
            for module, extra in [INDEX_EXTRAS[name]] if importlib.util.find_spec(module) is None}


def build_extra_indexes(settings: Settings, embedder: Embedder | None = None) -> dict[str, Index]:
    """The secondary indexes settings ask for and the installed extras allow; each loads its files (and
    ColBERT its model) on first use. Each is guarded (indexes/damage.py): damaged files make it unavailable,
    not the library."""
    made: dict[str, Index] = {}
    off = uninstalled_indexes(settings)
    for name in dict.fromkeys(settings.indexes):
        if name in off:
            continue
        made[name] = Guarded(name, lambda name=name: _open_extra(name, settings, embedder),
                             path=settings.index_dir / name)
    return made


def _open_extra(name: str, settings: Settings, embedder: Embedder | None) -> Index:
    if name == "bm25":
        return BM25Index(settings.index_dir / "bm25")
    index = ColBERTIndex(settings.index_dir / "colbert", checkpoint=settings.colbert_checkpoint,
                         cache_dir=settings.cache_dir / "colbert", encoder=embedder)
    index_files_present(index.path)
    return index


def index_files_present(path) -> None:
    """A ColBERT version folder whose codes or IVF went missing loads only when first searched: check at open
    that the files its metadata names are there, so the damage shows on every command's first line."""
    import json

    from indexes.versioned import VersionedDir

    folder = VersionedDir(Path(path)).current()
    if folder is None:
        return
    chunks = json.loads((folder / "metadata.json").read_text()).get("num_chunks", 1)
    needed = ["centroids.pt", "ivf.pid.pt", "pids.json", "avg_residual.pt", "buckets.pt"]
    needed += [f"{i}.{kind}" for i in range(chunks) for kind in ("codes.pt", "residuals.pt", "metadata.json")]
    for name in needed:
        if not (folder / name).is_file() or not (folder / name).stat().st_size:
            raise FileNotFoundError(2, "missing or empty", str(folder / name))


class Library:
    def __init__(self, settings: Settings, embedder: Embedder, extra_indexes: dict[str, Index] | None = None,
                 open_lost_store: bool = False):
        """open_lost_store: open a store that is missing or empty while the indexes hold passages (only
        `doctor --repair` does, to fill it again); otherwise that is StoreDamaged."""
        self.settings = settings
        self.embedder = embedder
        try:
            settings.index_dir.mkdir(parents=True, exist_ok=True)
            # Two processes creating one new library at once raced on sqlite's switch to WAL and on chromadb's
            # schema ("database is locked"); opening an existing one takes this lock for well under a second.
            with exclusive_lock(settings.index_dir / ".open.lock"):
                self.store = self._open_store(open_lost_store)
                self.store.check_fingerprint(settings.fingerprint())
                self.dense = self._open_dense()
        except PermissionError as exc:
            raise HomeNotWritable.of(settings, exc) from None
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES):
                raise HomeNotWritable.of(settings, exc) from None
            raise
        self.extra_indexes: dict[str, Index] = (build_extra_indexes(settings, embedder) if extra_indexes is None
                                                else dict(extra_indexes))
        # The cheap health check, once on open: front ends show these before anything else.
        self.open_warnings: list[str] = list(uninstalled_indexes(settings).values()) + self.warnings()

    def _open_store(self, open_lost: bool) -> Store:
        from indexes.inspect import store_lost

        path = self.settings.index_dir / "library.sqlite"
        lost = None if open_lost or path.exists() else store_lost(self.settings)
        if lost:  # never make an empty store beside indexes that still hold the library
            raise StoreDamaged(path, lost)
        store = Store(path)
        if not open_lost and not store.count_chunks(level=None):
            lost = store_lost(self.settings)
            if lost:
                store.close()
                raise StoreDamaged(path, lost)
        return store

    def _open_dense(self):
        settings = self.settings

        def dense() -> DenseIndex:
            return DenseIndex(self.embedder, path=settings.index_dir / "chroma", url=settings.chroma_url,
                              collection=settings.collection)

        # Files at rest are guarded; a chroma server's errors are the server's, shown as they are.
        return dense() if settings.chroma_url else Guarded("dense", dense, path=settings.index_dir / "chroma",
                                                            writes_fail=("add", "add_embedded"))

    # --- reading
    def papers(self) -> list[PaperRecord]:
        return self.store.papers()

    def paper_map(self) -> dict[str, Paper]:
        return {r.paper.arxiv_id: r.paper for r in self.store.papers()}

    def searchable(self, chunk: Chunk, ok_papers: dict[str, Paper]) -> bool:
        """The invariant every search result obeys: its paper is ok in the store, at the paper's current
        version (corpus-level summaries belong to no paper)."""
        if chunk.arxiv_id == CORPUS_ID:
            return True
        paper = ok_papers.get(chunk.arxiv_id)
        return paper is not None and chunk.version == paper.version

    def ok_papers(self) -> dict[str, Paper]:
        return {r.paper.arxiv_id: r.paper for r in self.store.papers(PaperStatus.ok)}

    # --- writing (callers hold `writing()`: one writer per library at a time)
    @contextmanager
    def writing(self, blocking: bool = True, on_wait: Callable[[int | None], None] | None = None) -> Iterator[None]:
        """The library's writer lock, across processes (released by the kernel if the holder dies). Two
        ingests run one after the other; a killed writer's leftovers are told apart from live work by it."""
        path = self.settings.index_dir / ".write.lock"
        lock = exclusive_lock(path, blocking=False)
        try:
            lock.__enter__()
        except LockHeld as exc:
            if not blocking:
                raise
            if on_wait:
                on_wait(exc.pid)
            lock = exclusive_lock(path)
            lock.__enter__()
        try:
            yield
            self.backup()
        finally:
            lock.__exit__(None, None, None)

    def backup(self) -> None:
        """The store's online backup, after every successful write (what `doctor --repair` restores from)."""
        try:
            self.store.backup()
        except (OSError, sqlite3.Error) as exc:  # a full disk must not fail the ingest that just succeeded
            log.warning("could not back up the store: %s", exc)

    def reset_index(self, name: str) -> Path | None:
        """Set a damaged index's folder aside and start that index empty (`doctor --repair` then refills it from
        the store). Returns where the damaged files went."""
        from indexes.rebuild import set_aside

        folder = self.settings.index_dir / ("chroma" if name == "dense" else name)
        if name == "dense":
            from chromadb.api.client import SharedSystemClient

            SharedSystemClient.clear_system_cache()  # chromadb keeps one client per path: let go of the damaged one
        aside = set_aside(folder) if folder.exists() else None
        if name == "dense":
            self.dense = self._open_dense()
        else:
            self.extra_indexes[name] = build_extra_indexes(self.settings.model_copy(update={"indexes": [name]}),
                                                           self.embedder)[name]
        return aside

    def writer(self) -> int | None:
        """Pid of another process writing to this library now, if any."""
        pid = lock_holder(self.settings.index_dir / ".write.lock")
        return None if pid == os.getpid() else pid

    def add_paper(self, paper: Paper, chunks: Sequence[Chunk], progress: Progress = _quiet, note: str = "") -> None:
        """Store a paper's chunks and embed them into the dense index; the paper is ok once both hold them.
        A new version of an ok paper replaces the old one only when it is complete. Secondary indexes
        catch up in `sync_indexes`. `note` (pages left out) stays on the paper's row as its reason."""
        record = self.store.paper(paper.arxiv_id)
        upgrade = record is not None and record.status == PaperStatus.ok and record.paper.version != paper.version
        if upgrade:
            self.store.stage_version(chunks)
        else:
            if record is not None and record.passages < PASSAGES_VERSION:
                # Passages made by older code can keep an id while their text changed (a ligature read as a
                # letter): every index forgets them all and embeds the new ones.
                self.drop_from_indexes([c.id for c in self.store.chunks_of(paper.arxiv_id)])
            stale = self.store.stage_paper(paper, chunks)
            self.drop_from_indexes(stale)
        fault_point("staged")
        self.embed_missing(paper.arxiv_id, chunks, progress)
        fault_point("embedded")
        if upgrade:
            old = self.store.promote_version(paper, len(chunks))
            fault_point("promoted")
            self.drop_from_indexes(old)
            if note:
                self.store.set_status(paper.arxiv_id, PaperStatus.ok, note, len(chunks))
        else:
            self.store.set_status(paper.arxiv_id, PaperStatus.ok, note, len(chunks))

    def embed_missing(self, arxiv_id: str, chunks: Sequence[Chunk], progress: Progress = _quiet) -> int:
        """Embed into the dense index the chunks it does not hold yet (an interrupted run's are kept)."""
        have = set(self.dense.ids_of(arxiv_id))
        # Batches of similar length pad less: in document order a paper's batches held 19% padding tokens, sorted 9%.
        missing = sorted((c for c in chunks if c.id not in have), key=lambda c: c.n_tokens)
        done = len(chunks) - len(missing)
        step = max(1, self.settings.embed_batch_size)
        for i in range(0, len(missing), step):
            part = missing[i:i + step]
            self.dense.add_embedded(part, self._embed(part))
            done += len(part)
            progress(ProgressEvent(stage="embed", message=arxiv_id, done=done, total=len(chunks), item=arxiv_id))
            fault_point("embed-batch")
        return len(missing)

    def _embed(self, chunks: Sequence[Chunk]):
        """Dense vectors of chunks; indexes that take token vectors from the same pass (ColBERT) keep theirs."""
        takers = [ix for ix in self.extra_indexes.values() if getattr(getattr(ix, "shared", None), "embedder", None)
                  is self.embedder]
        if not takers:
            return self.embedder.embed([c.text for c in chunks])
        pooled, tokens, ids = self.embedder.encode([c.text for c in chunks])
        for index in takers:
            index.stage(chunks, tokens, ids)
        return pooled

    def record_failure(self, paper: Paper, reason: str) -> str:
        """A paper could not be (re-)ingested. An ok paper at another version stays ok and searchable (the
        returned reason says so); anything else is marked failed with no chunk left in any index."""
        record = self.store.paper(paper.arxiv_id)
        if record is not None and record.status == PaperStatus.ok and record.paper.version != paper.version:
            self.rollback_version(paper.arxiv_id)
            have = f"v{record.paper.version}" if record.paper.version else "another version"
            want = f"v{paper.version}" if paper.version else "the version asked for"
            return f"{reason}; {have} is indexed and stays in use ({want} was not ingested)"
        self.drop_from_indexes(self.store.drop_leaves(paper.arxiv_id))
        self.store.upsert_paper(paper, PaperStatus.failed, reason, 0)
        return reason

    def rollback_version(self, arxiv_id: str) -> int:
        """Drop the leaves of an ok paper's other versions (an upgrade that did not finish)."""
        record = self.store.paper(arxiv_id)
        if record is None:
            return 0
        ids = self.store.drop_leaves(arxiv_id, record.paper.version, other_versions=True)
        self.drop_from_indexes(ids)
        return len(ids)

    def finish_pending(self, arxiv_id: str, progress: Progress = _quiet) -> bool:
        """Finish a paper left pending by a killed ingest from the chunks staged in the store; False (and
        the paper is rolled back to failed) when they are not all there."""
        record = self.store.paper(arxiv_id)
        if record is None or record.status != PaperStatus.pending:
            return False
        chunks = [c for c in self.store.chunks_of(arxiv_id) if c.version == record.paper.version]
        if not chunks or len(chunks) != record.n_chunks:
            self.record_failure(record.paper, "ingest was interrupted before its passages were stored; ingest it again")
            return False
        self.embed_missing(arxiv_id, chunks, progress)
        self.store.set_status(arxiv_id, PaperStatus.ok, "", len(chunks))
        return True

    def drop_from_indexes(self, ids: Sequence[str]) -> None:
        """Remove chunk ids from the dense and every secondary index (the store is the caller's business)."""
        if not ids:
            return
        self.dense.remove(ids)
        for index in self.extra_indexes.values():
            index.remove(ids)

    def remove(self, arxiv_id: str) -> bool:
        """Remove a paper from the store and every index."""
        if self.store.paper(arxiv_id) is None:
            return False
        self.drop_from_indexes([c.id for c in self.store.chunks_of(arxiv_id, level=None)])
        self.store.delete_paper(arxiv_id)
        return True

    def remove_failed(self) -> list[str]:
        """Forget every failed paper (rows only: a failed paper has no passage in any index)."""
        failed = [r.paper.arxiv_id for r in self.store.papers(PaperStatus.failed)]
        self.drop_from_indexes([c.id for aid in failed for c in self.store.chunks_of(aid, level=None)])
        return self.store.delete_failed()

    def sync_indexes(self, progress: Progress = _quiet, names: Sequence[str] | None = None) -> dict[str, int]:
        """Bring secondary indexes (BM25, ColBERT) in line with the store's searchable leaves: add what they
        miss, drop what is no longer searchable (removed, failed, pending or superseded). One batched add
        after an ingest is far cheaper for ColBERT than one per paper, and this also repairs an index left
        behind by a killed process. Summary nodes (level > 0) stay out: searching these indexes is leaf-only."""
        changed: dict[str, int] = {}
        for name, index in self.extra_indexes.items():
            if names is not None and name not in names:
                continue
            wanted = {c.id: c for c in self.store.iter_searchable(level=0)}
            have = set(index.chunk_ids())
            gone = sorted(have - wanted.keys())
            new = [c for cid, c in wanted.items() if cid not in have]
            if gone:
                index.remove(gone)
            if new:
                message = f"{name} index: adding {len(new)} passages"
                progress(ProgressEvent(stage="build", message=message, done=0, total=len(new)))

                def report(done: int, total: int, message: str = message) -> None:
                    progress(ProgressEvent(stage="build", message=message, done=done, total=total))
                    fault_point(f"sync-{name}")

                index.add(new, progress=report)
                progress(ProgressEvent(stage="build", message=message, done=len(new), total=len(new)))
            changed[name] = len(new) + len(gone)
        return changed

    # --- health (indexes.health holds the checks)
    def warnings(self) -> list[str]:
        """The cheap part of `doctor`: indexes missing, stale or left mid-build, papers left pending."""
        return [issue.message for issue in quick_check(self)]

    def close(self) -> None:
        self.store.close()
