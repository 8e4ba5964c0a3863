"""Real files for the "your own papers" tests: PDFs cut from the corpus (../shared/papers), a PDF written from
scratch with no arXiv id anywhere, and a Zotero data directory built with Zotero's own schema (tables and
columns as Zotero 5-7 write them: resource/schema/userdata.sql, item types / fields / creator types from its
global schema).
"""
from __future__ import annotations

import shutil
import sqlite3
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from tests.conftest import PAPERS

# Small corpus papers whose first pages are cut into one-page PDFs (distinct real text, ~5 passages each).
PAGE_IDS = ("1907.11692", "2305.13245", "1910.13461", "1802.05365", "1910.01108", "2210.17323", "2004.05150",
            "1701.06538", "2305.11206", "2003.10555", "2306.00978", "2310.06825", "2304.08467", "2211.17192",
            "2212.10560", "2302.13971", "2305.14314", "2307.08691", "2001.04451", "2104.09864", "2108.12409",
            "2205.14135")


def first_pages(arxiv_id: str, dest: Path, pages: int = 1) -> Path:
    """The first `pages` pages of a corpus PDF as a PDF of their own (its arXiv stamp included)."""
    reader = PdfReader(PAPERS / f"{arxiv_id}.pdf")
    writer = PdfWriter()
    for page in reader.pages[:pages]:
        writer.add_page(page)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as fh:
        writer.write(fh)
    return dest


def copy_paper(arxiv_id: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PAPERS / f"{arxiv_id}.pdf", dest)
    return dest


def text_pdf(dest: Path, title: str, authors: list[str], paragraphs: list[str], *, doi: str = "",
             created: str = "D:20190301120000") -> Path:
    """A PDF written from scratch (Helvetica, US letter): the title in 20 pt on top, authors in 12 pt, then the
    paragraphs in 10 pt over as many pages as they need. Its info dictionary has no title or author, and no
    arXiv id is anywhere in it: everything known about it comes from its first page."""
    lines = [(20, title), (12, ", ".join(authors))] + ([(9, f"https://doi.org/{doi}")] if doi else []) + [(10, "")]
    for paragraph in paragraphs:
        lines += [(10, line) for line in textwrap.wrap(paragraph, 95)] + [(10, "")]
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"), NameObject("/Encoding"): NameObject("/WinAnsiEncoding")}))
    pages: list[list[tuple[int, str]]] = [[]]
    y = 720
    for size, text in lines:
        if y < 72:
            pages.append([])
            y = 720
        pages[-1].append((size, text))
        y -= int(size * 1.45)
    for content in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({
            NameObject("/F1"): font})})
        ops, y = [], 720
        for size, text in content:
            safe = text.encode("latin-1", "replace").decode("latin-1")
            safe = safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /F1 {size} Tf 72 {y} Td ({safe}) Tj ET")
            y -= int(size * 1.45)
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    writer.add_metadata({"/Producer": "tests/own_papers.py", "/CreationDate": created})
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as fh:
        writer.write(fh)
    return dest


# --- Zotero: the tables a reader needs, with Zotero's own names and columns
ZOTERO_SCHEMA = """
CREATE TABLE version (schema TEXT PRIMARY KEY, version INT NOT NULL);
CREATE TABLE libraries (libraryID INTEGER PRIMARY KEY, type TEXT NOT NULL, editable INT NOT NULL,
    filesEditable INT NOT NULL, version INT NOT NULL DEFAULT 0, storageVersion INT NOT NULL DEFAULT 0,
    lastSync INT NOT NULL DEFAULT 0, archived INT NOT NULL DEFAULT 0);
CREATE TABLE itemTypes (itemTypeID INTEGER PRIMARY KEY, typeName TEXT, templateItemTypeID INT, display INT DEFAULT 1);
CREATE TABLE fields (fieldID INTEGER PRIMARY KEY, fieldName TEXT, fieldFormatID INT);
CREATE TABLE creatorTypes (creatorTypeID INTEGER PRIMARY KEY, creatorType TEXT);
CREATE TABLE items (itemID INTEGER PRIMARY KEY, itemTypeID INT NOT NULL,
    dateAdded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, dateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT NOT NULL, key TEXT NOT NULL,
    version INT NOT NULL DEFAULT 0, synced INT NOT NULL DEFAULT 0, UNIQUE (libraryID, key));
CREATE TABLE itemDataValues (valueID INTEGER PRIMARY KEY, value UNIQUE);
CREATE TABLE itemData (itemID INT, fieldID INT, valueID, PRIMARY KEY (itemID, fieldID));
CREATE TABLE creators (creatorID INTEGER PRIMARY KEY, firstName TEXT, lastName TEXT, fieldMode INT,
    UNIQUE (lastName, firstName, fieldMode));
CREATE TABLE itemCreators (itemID INT NOT NULL, creatorID INT NOT NULL, creatorTypeID INT NOT NULL DEFAULT 1,
    orderIndex INT NOT NULL DEFAULT 0, PRIMARY KEY (itemID, creatorID, creatorTypeID, orderIndex),
    UNIQUE (itemID, orderIndex));
CREATE TABLE itemAttachments (itemID INTEGER PRIMARY KEY, parentItemID INT, linkMode INT, contentType TEXT,
    charsetID INT, path TEXT, syncState INT DEFAULT 0, storageModTime INT, storageHash TEXT);
CREATE TABLE itemNotes (itemID INTEGER PRIMARY KEY, parentItemID INT, note TEXT, title TEXT);
CREATE TABLE deletedItems (itemID INTEGER PRIMARY KEY, dateDeleted DEFAULT CURRENT_TIMESTAMP NOT NULL);
CREATE TABLE collections (collectionID INTEGER PRIMARY KEY, collectionName TEXT NOT NULL,
    parentCollectionID INT DEFAULT NULL, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    libraryID INT NOT NULL, key TEXT NOT NULL, version INT NOT NULL DEFAULT 0, synced INT NOT NULL DEFAULT 0,
    UNIQUE (libraryID, key));
CREATE TABLE collectionItems (collectionID INT NOT NULL, itemID INT NOT NULL, orderIndex INT NOT NULL DEFAULT 0,
    PRIMARY KEY (collectionID, itemID));
"""
# Zotero numbers item types, fields and creator types from its global schema; a reader joins by name, so
# the numbers here only need to be distinct.
ITEM_TYPES = {"annotation": 1, "artwork": 2, "attachment": 3, "book": 7, "conferencePaper": 11,
              "journalArticle": 22, "note": 28, "preprint": 31, "report": 34}
FIELDS = {"title": 1, "abstractNote": 2, "date": 6, "url": 13, "extra": 16, "publicationTitle": 38, "DOI": 59,
          "proceedingsTitle": 69, "archiveID": 119, "citationKey": 121}
CREATOR_TYPES = {"author": 8, "editor": 10, "contributor": 2}


@dataclass
class ZoteroItem:
    key: str
    title: str
    type: str = "journalArticle"
    authors: list[tuple[str, str]] = field(default_factory=list)  # (first, last)
    fields: dict[str, str] = field(default_factory=dict)  # date, DOI, extra, url, archiveID, citationKey ...
    pdf: Path | None = None  # copied into storage/<attachment key>/
    linked_pdf: Path | None = None  # a linked file (absolute path), not in storage/
    collections: list[str] = field(default_factory=list)
    deleted: bool = False


def zotero_library(root: Path, items: list[ZoteroItem], collections: dict[str, str | None]) -> Path:
    """A Zotero data directory (zotero.sqlite, storage/<KEY>/file.pdf) holding `items`; collections maps a
    collection's name to its parent's name (None at the top). Each attachment has a key of its own, as Zotero
    gives it; a note is added to the first item (notes are not papers)."""
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(root / "zotero.sqlite"))
    db.executescript(ZOTERO_SCHEMA)
    db.execute("INSERT INTO version VALUES ('userdata', 120)")
    db.execute("INSERT INTO libraries VALUES (1, 'user', 1, 1, 0, 0, 0, 0)")
    db.executemany("INSERT INTO itemTypes VALUES (?, ?, NULL, 1)", [(i, n) for n, i in ITEM_TYPES.items()])
    db.executemany("INSERT INTO fields VALUES (?, ?, NULL)", [(i, n) for n, i in FIELDS.items()])
    db.executemany("INSERT INTO creatorTypes VALUES (?, ?)", [(i, n) for n, i in CREATOR_TYPES.items()])
    collection_ids: dict[str, int] = {}
    for i, (name, parent) in enumerate(collections.items(), start=1):
        collection_ids[name] = i
        db.execute("INSERT INTO collections (collectionID, collectionName, parentCollectionID, libraryID, key) "
                   "VALUES (?, ?, ?, 1, ?)", (i, name, collection_ids.get(parent or ""), f"COLL{i:04d}"))
    add_items(root, items, db, collection_ids)
    db.commit()
    db.close()
    return root


def add_items(root: Path, items: list[ZoteroItem], db: sqlite3.Connection | None = None,
              collection_ids: dict[str, int] | None = None) -> None:
    """Add items to the library at root (as Zotero does when the user adds papers later)."""
    own = db is None
    db = db or sqlite3.connect(str(root / "zotero.sqlite"))
    if collection_ids is None:
        collection_ids = {n: i for i, n in db.execute("SELECT collectionID, collectionName FROM collections")}
    next_id = (db.execute("SELECT MAX(itemID) FROM items").fetchone()[0] or 0) + 1
    next_creator = (db.execute("SELECT MAX(creatorID) FROM creators").fetchone()[0] or 0) + 1

    def value_id(value: str) -> int:
        row = db.execute("SELECT valueID FROM itemDataValues WHERE value=?", (value,)).fetchone()
        if row:
            return row[0]
        return db.execute("INSERT INTO itemDataValues (value) VALUES (?)", (value,)).lastrowid

    for item in items:
        item_id, next_id = next_id, next_id + 1
        db.execute("INSERT INTO items (itemID, itemTypeID, libraryID, key) VALUES (?, ?, 1, ?)",
                   (item_id, ITEM_TYPES[item.type], item.key))
        for name, value in {"title": item.title, **item.fields}.items():
            db.execute("INSERT INTO itemData VALUES (?, ?, ?)", (item_id, FIELDS[name], value_id(value)))
        for order, (first, last) in enumerate(item.authors):  # a person is one creator row, shared by items
            row = db.execute("SELECT creatorID FROM creators WHERE firstName=? AND lastName=? AND fieldMode=0",
                             (first, last)).fetchone()
            if row is None:
                db.execute("INSERT INTO creators VALUES (?, ?, ?, 0)", (next_creator, first, last))
                row, next_creator = (next_creator,), next_creator + 1
            db.execute("INSERT INTO itemCreators VALUES (?, ?, ?, ?)", (item_id, row[0], CREATOR_TYPES["author"], order))
        for name in item.collections:
            db.execute("INSERT INTO collectionItems VALUES (?, ?, 0)", (collection_ids[name], item_id))
        if item.deleted:
            db.execute("INSERT INTO deletedItems (itemID) VALUES (?)", (item_id,))
        if item.pdf is not None or item.linked_pdf is not None:
            attachment_key = item.key[::-1]  # 8 characters, like every Zotero key; its own
            attachment_id, next_id = next_id, next_id + 1
            db.execute("INSERT INTO items (itemID, itemTypeID, libraryID, key) VALUES (?, ?, 1, ?)",
                       (attachment_id, ITEM_TYPES["attachment"], attachment_key))
            if item.pdf is not None:
                stored = root / "storage" / attachment_key / item.pdf.name
                stored.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(item.pdf, stored)
                path, mode = f"storage:{item.pdf.name}", 0  # imported file
            else:
                path, mode = str(item.linked_pdf), 2  # linked file
            db.execute("INSERT INTO itemAttachments (itemID, parentItemID, linkMode, contentType, path) "
                       "VALUES (?, ?, ?, 'application/pdf', ?)", (attachment_id, item_id, mode, path))
            db.execute("INSERT INTO itemData VALUES (?, ?, ?)", (attachment_id, FIELDS["title"], value_id("Full Text PDF")))
    if items:
        note_id = next_id
        db.execute("INSERT INTO items (itemID, itemTypeID, libraryID, key) VALUES (?, ?, 1, ?)",
                   (note_id, ITEM_TYPES["note"], f"N{note_id:07d}"))
        db.execute("INSERT INTO itemNotes VALUES (?, ?, 'my reading notes', 'notes')", (note_id, next_id - 1))
    if own:
        db.commit()
        db.close()
