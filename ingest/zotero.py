"""A Zotero library as a reading list: items' metadata from zotero.sqlite and their PDFs from storage/.

The user's database is never opened: it is copied (with its write-ahead log, so recent changes are there) into
a temporary folder and the copy is queried read-only. A running Zotero locks its database, and nothing here
should ever be able to change it. Tables read (Zotero 5-7 schema): items, itemTypes, fields, itemData,
itemDataValues, creators, creatorTypes, itemCreators, itemAttachments, deletedItems, collections,
collectionItems.
"""
from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from collections import defaultdict
from pathlib import Path

from ingest.local import LibraryEntry
from ingest.sources import BadSource, extract_refs, parse_ref

# itemAttachments.linkMode (Zotero.Attachments.LINK_MODE_*)
_IMPORTED_FILE, _IMPORTED_URL, _LINKED_FILE = 0, 1, 2
_YEAR = re.compile(r"(?<!\d)((?:1[5-9]|20)\d\d)(?!\d)")


class ZoteroError(ValueError):
    """A folder or file that is not a readable Zotero library; the message says what to check."""


def zotero_database(source: Path) -> Path:
    """zotero.sqlite of a Zotero data directory (or the file itself)."""
    db = source / "zotero.sqlite" if source.is_dir() else source
    if not db.is_file():
        raise ZoteroError(f"no zotero.sqlite in {source} (Zotero's data directory holds it and storage/: "
                          "Zotero > Settings > Advanced > Files and Folders shows where)")
    return db


def read_zotero(source: Path, collection: str = "") -> list[LibraryEntry]:
    """Every item of the library (or of one collection and its subcollections) with its first PDF. Notes,
    child attachments and items in the trash are not papers; a PDF added on its own is."""
    db_path = zotero_database(source)
    with tempfile.TemporaryDirectory(prefix="zotero-copy-") as tmp:
        copy = Path(tmp) / "zotero.sqlite"
        try:
            shutil.copy2(db_path, copy)
            for suffix in ("-wal", "-journal"):
                side = db_path.with_name(db_path.name + suffix)
                if side.is_file():
                    shutil.copy2(side, copy.with_name(copy.name + suffix))
        except OSError as exc:
            raise ZoteroError(f"cannot copy {db_path}: {exc.strerror or exc}") from exc
        db = sqlite3.connect(str(copy))
        try:
            db.execute("PRAGMA query_only=ON")
            return _read(db, db_path.parent, collection)
        except sqlite3.DatabaseError as exc:
            raise ZoteroError(f"{db_path} is not a Zotero database Zotero 5 or later wrote ({exc})") from exc
        finally:
            db.close()


def _read(db: sqlite3.Connection, data_dir: Path, collection: str) -> list[LibraryEntry]:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    missing = {"items", "itemData", "itemDataValues", "itemAttachments", "creators", "itemCreators"} - tables
    if missing:
        raise ZoteroError(f"{data_dir / 'zotero.sqlite'} is not a Zotero database (no {', '.join(sorted(missing))})")
    item_types = "itemTypesCombined" if "itemTypesCombined" in tables else "itemTypes"
    fields = "fieldsCombined" if "fieldsCombined" in tables else "fields"
    deleted = "SELECT itemID FROM deletedItems" if "deletedItems" in tables else "SELECT NULL"
    items = db.execute(f"SELECT i.itemID, i.key, t.typeName FROM items i JOIN {item_types} t USING (itemTypeID) "
                       f"WHERE i.itemID NOT IN ({deleted}) ORDER BY i.itemID").fetchall()
    values: dict[int, dict[str, str]] = defaultdict(dict)
    for item_id, name, value in db.execute(f"SELECT d.itemID, f.fieldName, v.value FROM itemData d JOIN {fields} f "
                                           "USING (fieldID) JOIN itemDataValues v USING (valueID)"):
        values[item_id][name] = str(value)
    creators: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for item_id, first, last, mode, kind in db.execute(
            "SELECT ic.itemID, c.firstName, c.lastName, c.fieldMode, ct.creatorType FROM itemCreators ic "
            "JOIN creators c USING (creatorID) LEFT JOIN creatorTypes ct USING (creatorTypeID) "
            "ORDER BY ic.itemID, ic.orderIndex"):
        name = (last or "") if mode == 1 else f"{first or ''} {last or ''}".strip()
        creators[item_id].append((kind or "author", name))
    attachments: dict[int | None, list[tuple[int, str, int, str, str]]] = defaultdict(list)
    for row in db.execute(f"SELECT a.itemID, i.key, a.linkMode, a.contentType, a.path, a.parentItemID "
                          f"FROM itemAttachments a JOIN items i USING (itemID) WHERE a.itemID NOT IN ({deleted}) "
                          "ORDER BY a.itemID"):
        attachments[row[5]].append(row[:5])
    wanted = _collection_items(db, collection, tables) if collection else None
    standalone = {a[0]: a for a in attachments.get(None, [])}
    entries = []
    for item_id, key, type_name in items:
        if (wanted is not None and item_id not in wanted) or type_name in ("note", "annotation"):
            continue
        if type_name == "attachment":  # a PDF added on its own is a paper; a child attachment goes with its parent
            own = standalone.get(item_id)
            if own is None or not _is_pdf(own):
                continue
            files = [own]
        else:
            files = attachments.get(item_id, [])
        entries.append(_entry(key, values[item_id], creators[item_id], files, data_dir))
    return entries


def _collection_items(db: sqlite3.Connection, collection: str, tables: set[str]) -> set[int]:
    """Items of the collection named (or keyed) `collection` and of its subcollections."""
    if "collections" not in tables:
        raise ZoteroError("this Zotero database has no collections")
    rows = db.execute("SELECT collectionID, collectionName, key, parentCollectionID FROM collections").fetchall()
    roots = [r[0] for r in rows if r[1].lower() == collection.lower() or r[2] == collection]
    if not roots:
        names = ", ".join(sorted(r[1] for r in rows)[:20]) or "none"
        raise ZoteroError(f"no Zotero collection named {collection!r} (collections: {names})")
    chosen, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        for cid, _, _, parent_id in rows:
            if parent_id == parent and cid not in chosen:
                chosen.add(cid)
                frontier.append(cid)
    marks = ",".join("?" * len(chosen))
    return {r[0] for r in db.execute(f"SELECT itemID FROM collectionItems WHERE collectionID IN ({marks})",
                                     sorted(chosen))}


def _is_pdf(attachment: tuple[int, str, int, str, str]) -> bool:
    _, _, _, content_type, path = attachment
    return (content_type or "").lower() == "application/pdf" or (path or "").lower().endswith(".pdf")


def _attachment_path(attachment: tuple[int, str, int, str, str], data_dir: Path) -> tuple[Path | None, str]:
    """Where an attachment's file is, or why it cannot be known."""
    _, key, link_mode, _, path = attachment
    path = path or ""
    if link_mode in (_IMPORTED_FILE, _IMPORTED_URL) and path.startswith("storage:"):
        return data_dir / "storage" / key / path[len("storage:"):], ""
    if link_mode == _LINKED_FILE and path.startswith("attachments:"):
        return None, (f"its PDF is linked relative to Zotero's base directory ({path}), which is set in Zotero, "
                      "not in the database")
    if link_mode == _LINKED_FILE and path:
        return Path(path).expanduser(), ""
    return None, ""


def _entry(key: str, values: dict[str, str], creators: list[tuple[str, str]],
           attachments: list[tuple[int, str, int, str, str]], data_dir: Path) -> LibraryEntry:
    authors = tuple(name for kind, name in creators if kind == "author" and name) or tuple(n for _, n in creators if n)
    year = _YEAR.search(values.get("date", ""))
    pdf, problem = None, ""
    for attachment in (a for a in attachments if _is_pdf(a)):
        path, why = _attachment_path(attachment, data_dir)
        if path is not None and path.is_file():
            pdf, problem = path.resolve(), ""
            break
        problem = problem or why or f"its PDF is not there: {path}"
    extra = values.get("extra", "")
    key_line = re.search(r"(?im)^\s*citation key:\s*(\S+)\s*$", extra)
    title = " ".join(values.get("title", "").split())
    return LibraryEntry(
        origin="zotero", item=f"Zotero item {key}" + (f" ({title[:60]})" if title else ""),
        citation_key=values.get("citationKey") or (key_line.group(1) if key_line else ""), title=title,
        authors=authors, year=int(year.group(1)) if year else None, doi=values.get("DOI", "").strip(),
        arxiv_id=_arxiv_id(values), abstract=values.get("abstractNote", ""), pdf=pdf, pdf_problem=problem,
        venue=next((values[f] for f in ("publicationTitle", "proceedingsTitle", "conferenceName", "bookTitle")
                    if values.get(f)), ""))


def _arxiv_id(values: dict[str, str]) -> str:
    """An arXiv id the item names: archive id ('arXiv:2305.13245'), an arXiv DOI, URL or 'arXiv: ...' in extra."""
    doi = values.get("DOI", "")
    candidates = [values.get("archiveID", ""), doi[len("10.48550/arXiv."):] if doi.lower().startswith(
        "10.48550/arxiv.") else ""]
    for value in candidates:
        if not value:
            continue
        try:
            return parse_ref(value).arxiv_id
        except BadSource:
            continue
    refs = extract_refs(" ".join(values.get(f, "") for f in ("url", "extra", "publicationTitle", "archiveID")))
    return refs[0].arxiv_id if refs else ""
