"""The library's invariant, checked and repaired: a chunk is searchable in an index (chromadb, BM25,
ColBERT) iff its paper is ok in the store at the paper's current version, every index holds every such
chunk, and no index is left without a live version or with a killed writer's build folder.

`quick_check` is the cheap part (counts, folders, pending rows: milliseconds), run when the library opens
and before a search; `check` compares every id; `repair` finishes what can be finished (a pending paper
whose chunks are all staged, missing passages) and rolls back the rest (another version's leftovers,
orphans), then rebuilds what a secondary index lacks.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from foundation.locks import lock_holder
from foundation.types import PASSAGES_VERSION, PaperStatus, ProgressEvent
from indexes.damage import damaged_indexes
from indexes.versioned import VersionedDir

IssueKind = Literal["missing", "orphan", "unsearchable", "pending", "other_version", "failed_chunks", "count",
                    "no_current", "building", "leftover_build", "stale", "damaged", "tampered",
                    "outdated"]
REPAIR = "run `paper-assistant doctor --repair`"


class Issue(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: IssueKind
    index: str = Field(description="store, dense, or a secondary index's name")
    arxiv_id: str | None = None
    count: int = 0
    unavailable: bool = Field(default=False, description="The index cannot serve searches at all")
    file: str | None = Field(default=None, description="The damaged file (kind damaged / tampered)")
    message: str


class PaperCounts(BaseModel):
    arxiv_id: str
    version: int | None
    status: PaperStatus
    recorded: int = Field(description="n_chunks the store's paper row records")
    store: int = Field(description="Leaves at the paper's current version")
    indexes: dict[str, int] = Field(description="Of those, how many each index holds")
    other: int = Field(default=0, description="Leaves of other versions (or of a paper that is not ok) in the store")


class HealthReport(BaseModel):
    consistent: bool
    writer: int | None = Field(default=None, description="Pid of a process writing to the library during the check")
    searchable: int = 0
    papers: list[PaperCounts] = []
    indexes: dict[str, int] = Field(default_factory=dict, description="Ids each index holds")
    issues: list[Issue] = []


class RepairReport(BaseModel):
    before: HealthReport
    actions: list[str]
    after: HealthReport


def _writer(library) -> int | None:
    """Another process writing now: an ingest or a repair (the library's lock), or a summary-tree build."""
    from indexes.raptor import build_running

    tree = build_running(library.settings.index_dir)
    return library.writer() or (tree if tree != os.getpid() else None)


def _live_count(index) -> int:
    try:
        return len(index)
    except TypeError:
        return len(index.chunk_ids())


def _folder_issues(name: str, index, searchable: int, writer: int | None) -> list[Issue]:
    if getattr(index, "damage", None):
        return [Issue(kind="damaged", index=name, unavailable=True, message=index.message())]
    path = getattr(index, "path", None)
    if path is None or not Path(path).exists():
        if not searchable or path is None:
            return []
        if writer is not None:
            return [Issue(kind="building", index=name, unavailable=True,
                          message=f"the {name} index is being built (pid {writer}): {name} search is unavailable "
                                  "until that finishes")]
        return [Issue(kind="no_current", index=name, unavailable=True,
                      message=f"the {name} index is missing ({path}): {name} search is unavailable; {REPAIR}")]
    folder = VersionedDir(Path(path))
    holder = lock_holder(folder.root / ".lock")
    builder = (holder if holder != os.getpid() else None) or writer
    builds = sorted(p.name for p in folder.root.glob(".build-*"))
    issues = []
    if builds and builder is None:
        issues.append(Issue(kind="leftover_build", index=name, count=len(builds),
                            message=f"a killed {name} build left {', '.join(builds)} in {folder.root}; {REPAIR}"))
    if folder.current() is None and searchable:
        if builder is not None:
            issues.append(Issue(kind="building", index=name, unavailable=True,
                                message=f"the {name} index is being built (pid {builder}): {name} search is "
                                        "unavailable until that finishes"))
        else:
            why = "no CURRENT" if folder.current_name() is None else f"CURRENT names {folder.current_name()}, not there"
            issues.append(Issue(kind="no_current", index=name, unavailable=True,
                                message=f"the {name} index has no live version ({why}): {name} search is unavailable; "
                                        f"{REPAIR}"))
    return issues


def unavailable(library, name: str) -> str | None:
    """Why secondary index `name` cannot serve a search (None when it can): what a search checks first,
    so it reads the in-memory count and touches the disk only when that is zero."""
    index = library.extra_indexes[name]
    if _live_count(index):
        return None
    searchable = library.store.count_searchable()
    if not searchable:
        return None
    down = [i for i in _folder_issues(name, index, searchable, library.writer()) if i.unavailable]
    return down[0].message if down else (f"the {name} index holds no passages (the store has {searchable}): "
                                         f"{name} search is unavailable; {REPAIR}")


def _dense_damage(library) -> list[Issue]:
    if not getattr(library.dense, "damage", None):
        return []
    return [Issue(kind="damaged", index="dense", unavailable=True,
                  message=f"the dense index (chromadb) is damaged ({library.dense.damage}): dense and hybrid search "
                          f"cannot use it and nothing can be ingested; {REPAIR}")]


def quick_check(library) -> list[Issue]:
    """Counts and folders only; what a search or the library's opening can afford."""
    store = library.store
    writer = _writer(library)
    searchable = store.count_searchable()
    issues: list[Issue] = _dense_damage(library)
    for name, index in library.extra_indexes.items():
        folder = _folder_issues(name, index, searchable, writer)
        issues += folder
        if any(i.unavailable for i in folder):
            continue
        live = _live_count(index)
        if searchable and live == 0:
            issues.append(Issue(kind="missing", index=name, count=searchable, unavailable=True,
                                message=f"the {name} index holds no passages (the store has {searchable}): {name} "
                                        f"search is unavailable; {REPAIR}"))
        elif live != searchable and writer is None:
            issues.append(Issue(kind="stale", index=name, count=abs(live - searchable),
                                message=f"the {name} index is stale: it holds {live} passages, the store has "
                                        f"{searchable} searchable ones; {REPAIR}"))
    if writer is None:
        pending = store.papers(PaperStatus.pending)
        if pending:
            ids = ", ".join(r.paper.arxiv_id for r in pending[:5]) + (" ..." if len(pending) > 5 else "")
            issues.append(Issue(kind="pending", index="store", count=len(pending),
                                message=f"{len(pending)} paper(s) left half-ingested by an interrupted run ({ids}): "
                                        f"not searchable; {REPAIR} or ingest them again"))
        dense, total = library.dense.count(), store.count_chunks(level=None)
        outdated = [r.paper.arxiv_id for r in store.papers(PaperStatus.ok) if r.passages < PASSAGES_VERSION]
        if outdated:
            ids = " ".join(outdated[:5]) + (" ..." if len(outdated) > 5 else "")
            issues.append(Issue(kind="outdated", index="store", count=len(outdated),
                                message=f"{len(outdated)} paper(s) were indexed by an older version (no table rows): "
                                        f"searchable as they are; `paper-assistant ingest {ids}` re-indexes them"))
        if total == 0 and dense:
            issues.append(Issue(kind="damaged", index="store", file=str(store.path), unavailable=True,
                                message=f"the store {store.path} holds no passages while the dense index holds {dense}: "
                                        f"it was lost or replaced; {REPAIR} restores it"))
        elif dense != total and not pending and not getattr(library.dense, "damage", None):
            issues.append(Issue(kind="stale", index="dense", count=abs(dense - total),
                                message=f"the dense index holds {dense} passages, the store {total}; {REPAIR}"))
    return issues


def check(library) -> HealthReport:
    """Every id of every index against the store's searchable leaves, per paper."""
    store = library.store
    writer = _writer(library)
    records = {r.paper.arxiv_id: r for r in store.papers()}
    leaves = store.leaf_ids()
    searchable: dict[str, str] = {}
    other: Counter[str] = Counter()
    for cid, (aid, version) in leaves.items():
        rec = records.get(aid)
        if rec is not None and rec.status == PaperStatus.ok and version == rec.paper.version:
            searchable[cid] = aid
        else:
            other[aid] += 1
    store_ids = store.all_ids()
    held: dict[str, set[str]] = {"dense": set(library.dense.all_ids())}
    held.update({name: set(index.chunk_ids()) for name, index in library.extra_indexes.items()})
    for name in damaged_indexes(library):  # what a damaged index "holds" is no count: its damage is the issue
        held.pop(name, None)

    issues: list[Issue] = _dense_damage(library)
    for name, index in library.extra_indexes.items():
        issues += _folder_issues(name, index, len(searchable), writer)
    tampered = store.tampered_ids()
    if tampered:
        shown = ", ".join(tampered[:3]) + (" ..." if len(tampered) > 3 else "")
        issues.append(Issue(kind="tampered", index="store", count=len(tampered), file=str(store.path),
                            message=f"{len(tampered)} passage rows in {store.path} no longer match their checksums "
                                    f"(changed by hand, or damaged: {shown}): they are left out of search; {REPAIR}"))
    for name, ids in held.items():
        orphans = ids - store_ids
        if orphans:
            issues.append(Issue(kind="orphan", index=name, count=len(orphans),
                                message=f"the {name} index holds {len(orphans)} passages the store does not have"))
        if name != "dense":  # dense also holds summaries and the chunks of a paper being embedded
            unsearchable = Counter(leaves[c][0] for c in ids & store_ids if c not in searchable and c in leaves)
            for aid, n in sorted(unsearchable.items()):
                status = records[aid].status.value if aid in records else "unknown"
                issues.append(Issue(kind="unsearchable", index=name, arxiv_id=aid, count=n,
                                    message=f"the {name} index holds {n} passages of {aid}, which is {status} "
                                            "or of another version"))
        missing = Counter(aid for cid, aid in searchable.items() if cid not in ids)
        if name == "dense":
            summaries_missing = len((store_ids - leaves.keys()) - ids)
            if summaries_missing:
                issues.append(Issue(kind="missing", index=name, count=summaries_missing,
                                    message=f"the dense index lacks {summaries_missing} summary nodes"))
        for aid, n in sorted(missing.items()):
            issues.append(Issue(kind="missing", index=name, arxiv_id=aid, count=n,
                                message=f"the {name} index lacks {n} passages of {aid}"))

    papers = []
    per_paper = Counter(searchable.values())
    for aid, rec in records.items():
        mine = {cid for cid, a in searchable.items() if a == aid} if per_paper[aid] else set()
        papers.append(PaperCounts(arxiv_id=aid, version=rec.paper.version, status=rec.status, recorded=rec.n_chunks,
                                  store=per_paper[aid], indexes={n: len(ids & mine) for n, ids in held.items()},
                                  other=other[aid]))
        if rec.status == PaperStatus.pending and writer is None:
            issues.append(Issue(kind="pending", index="store", arxiv_id=aid, count=other[aid],
                                message=f"{aid} was left pending by an interrupted ingest"))
        elif rec.status == PaperStatus.ok and other[aid]:
            issues.append(Issue(kind="other_version", index="store", arxiv_id=aid, count=other[aid],
                                message=f"{aid} is ok at v{rec.paper.version} but the store also holds {other[aid]} "
                                        "passages of another version (an upgrade that did not finish)"))
        elif rec.status == PaperStatus.failed and other[aid]:
            issues.append(Issue(kind="failed_chunks", index="store", arxiv_id=aid, count=other[aid],
                                message=f"{aid} is failed but the store still holds {other[aid]} of its passages"))
        if rec.status == PaperStatus.ok and rec.n_chunks != per_paper[aid]:
            issues.append(Issue(kind="count", index="store", arxiv_id=aid, count=per_paper[aid],
                                message=f"{aid} is ok with {rec.n_chunks} passages recorded but {per_paper[aid]} stored"))
    orphan_papers = sorted({aid for aid, _ in leaves.values()} - records.keys())
    for aid in orphan_papers:
        issues.append(Issue(kind="orphan", index="store", arxiv_id=aid, count=other[aid],
                            message=f"the store holds {other[aid]} passages of {aid}, which has no paper row"))
    if writer is not None:  # mid-write differences are expected, not damage
        issues = [i for i in issues if i.kind == "leftover_build"]
    return HealthReport(consistent=not issues, writer=writer, searchable=len(searchable), papers=papers,
                        indexes={n: len(ids) for n, ids in held.items()}, issues=issues)


def repair(library, progress: Callable[[ProgressEvent], None] = lambda e: None) -> RepairReport:
    """Finish or roll back what `check` finds; the caller holds `library.writing()`."""
    before = check(library)
    actions: list[str] = []
    store = library.store
    if store.count_chunks(level=None) == 0 and library.dense.count():
        # The store was lost or replaced: "rolling back" to it would empty every index. Restoring it is
        # indexes/rebuild.py's job; with nothing restored, leave the indexes as they are.
        return RepairReport(before=before, after=before, actions=[
            "nothing repaired: the store holds no passages while the indexes do; restore library.sqlite (its "
            "backup or the papers' PDFs) first: the indexes are left as they are"])
    for name, index in library.extra_indexes.items():
        path = getattr(index, "path", None)
        if path is not None and any(Path(path).glob(".build-*")):
            folder = VersionedDir(Path(path))
            with folder.lock():
                folder.cleanup()
            actions.append(f"{name}: removed a killed build's folders")
    for rec in store.papers(PaperStatus.pending):
        aid = rec.paper.arxiv_id
        if library.finish_pending(aid, progress):
            actions.append(f"{aid}: finished the interrupted ingest from its {store.paper(aid).n_chunks} staged passages")
        else:
            actions.append(f"{aid}: rolled back (its passages were not all staged); ingest it again")
    for rec in store.papers():
        aid = rec.paper.arxiv_id
        if rec.status == PaperStatus.ok:
            dropped = library.rollback_version(aid)
            if dropped:
                actions.append(f"{aid}: dropped {dropped} passages of an unfinished version upgrade")
            stored = [c for c in store.chunks_of(aid) if c.version == rec.paper.version]
            if not stored:
                library.record_failure(rec.paper, "no passages left in the store; ingest it again")
                actions.append(f"{aid}: marked failed (no passages left)")
                continue
            if library.embed_missing(aid, stored, progress):
                actions.append(f"{aid}: embedded passages the dense index lacked")
            if rec.n_chunks != len(stored):
                store.set_status(aid, PaperStatus.ok, "", len(stored))
                actions.append(f"{aid}: recorded {len(stored)} passages (was {rec.n_chunks})")
        elif rec.status == PaperStatus.failed:
            ids = store.drop_leaves(aid)
            if ids:
                library.drop_from_indexes(ids)
                actions.append(f"{aid}: dropped {len(ids)} passages of a failed paper")
    rows = {r.paper.arxiv_id for r in store.papers()}
    for aid in sorted({aid for aid, _ in store.leaf_ids().values()} - rows):
        library.drop_from_indexes(store.drop_leaves(aid))
        actions.append(f"{aid}: dropped passages with no paper row")
    orphans = sorted(set(library.dense.all_ids()) - store.all_ids())
    if orphans:
        library.dense.remove(orphans)
        actions.append(f"dense: removed {len(orphans)} passages the store does not have")
    summaries = [c for c in store.iter_chunks(level=None) if c.level > 0]
    have = set(library.dense.all_ids()) if summaries else set()
    lost = [c for c in summaries if c.id not in have]
    if lost:
        library.dense.add_embedded(lost, library.embedder.embed([c.text for c in lost]))
        actions.append(f"dense: embedded {len(lost)} summary nodes it lacked")
    for name, n in library.sync_indexes(progress).items():
        if n:
            actions.append(f"{name}: synced {n} passages with the store")
    return RepairReport(before=before, actions=actions, after=check(library))
