"""A BibTeX library as a reading list: each entry's metadata and its PDF, from the `file` field that Zotero
(Better BibTeX and its own export), JabRef and Mendeley write.

A small reader of its own (no dependency): entries with {braced} or "quoted" values, numbers, @string macros
and # concatenation; @comment and @preamble are skipped. An entry it cannot read is reported by line and the
rest goes on. LaTeX in titles and names is turned into text (accents, \\emph{}, braces).
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ingest.local import LibraryEntry
from ingest.sources import BadSource, extract_refs, parse_ref

_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304", ".": "\u0307",
            "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328", "r": "\u030a"}
_ACCENT = re.compile(r"\\([\"'`^~=.]|[uvHckr](?![A-Za-z]))\s*(?:\{\s*(\\[ij]|[A-Za-z])\s*\}|(\\[ij]|[A-Za-z]))")
_LETTERS = {r"\ss": "ß", r"\o": "ø", r"\O": "Ø", r"\aa": "å", r"\AA": "Å", r"\ae": "æ", r"\AE": "Æ", r"\l": "ł",
            r"\L": "Ł", r"\oe": "œ", r"\i": "ı", r"\j": "ȷ"}
_COMMAND = re.compile(r"\\(?:emph|textit|textbf|textsc|texttt|textrm|mathrm|mbox|url|text)\s*\{([^{}]*)\}")
_MONTHLESS_YEAR = re.compile(r"(?<!\d)((?:1[5-9]|20)\d\d)(?!\d)")


_ENTRY_START = re.compile(r"\n[ \t]*@[ \t]*[A-Za-z]+[ \t]*[{(]")


class BibtexError(ValueError):
    """A .bib file that cannot be read at all."""


def read_bibtex(path: Path) -> tuple[list[LibraryEntry], list[str]]:
    """Every entry of the file, and the problems met (entries that could not be read), in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise BibtexError(f"cannot read {path}: {exc.strerror or exc}") from exc
    raw, problems = parse_bibtex(text)
    entries = [_entry(key, kind, fields, path) for kind, key, fields in raw]
    return entries, [f"{path.name}: {p}" for p in problems]


def parse_bibtex(text: str) -> tuple[list[tuple[str, str, dict[str, str]]], list[str]]:
    """[(entry type, key, {field: raw value})], problems. Field names are lower case; values keep their LaTeX."""
    macros: dict[str, str] = {m: m.capitalize() for m in ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                                          "sep", "oct", "nov", "dec")}
    entries, problems = [], []
    pos = 0
    while (at := text.find("@", pos)) >= 0:
        match = re.compile(r"@\s*([A-Za-z]+)\s*([{(])").match(text, at)
        if match is None:
            pos = at + 1
            continue
        kind, opener = match.group(1).lower(), match.group(2)
        closer = "}" if opener == "{" else ")"
        line = text.count("\n", 0, at) + 1
        following = _ENTRY_START.search(text, match.end())
        try:
            end = _balanced_end(text, match.end() - 1, opener, closer)
        except ValueError:
            end = len(text)
        if following is not None and end > following.start():  # runs into the next entry: unclosed
            end = -1
        if end < 0 or end == len(text):
            problems.append(f"line {line}: @{kind} is not closed")
            if following is None:
                break
            pos = following.start()
            continue
        body = text[match.end():end]
        pos = end + 1
        if kind in ("comment", "preamble"):
            continue
        try:
            if kind == "string":
                name, value = _fields(body, macros).popitem()
                macros[name] = value
                continue
            key, _, rest = body.partition(",")
            if not key.strip() or re.search(r"[\s=]", key.strip()):
                raise ValueError("no citation key")
            entries.append((kind, key.strip(), _fields(rest, macros)))
        except (ValueError, KeyError) as exc:
            problems.append(f"line {line}: cannot read @{kind}: {exc}")
    return entries, problems


def _balanced_end(text: str, start: int, opener: str, closer: str) -> int:
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "\\":
            continue
        if c == opener or (opener == "(" and c == "{"):
            depth += 1
        elif c == closer or (opener == "(" and c == "}"):
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced")


def _fields(body: str, macros: dict[str, str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    pos, n = 0, len(body)
    while pos < n:
        match = re.compile(r"\s*,?\s*([A-Za-z][\w\-:.+/]*)\s*=\s*").match(body, pos)
        if match is None:
            if body[pos:].strip(" \t\r\n,"):
                raise ValueError(f"unexpected text {body[pos:pos + 30].strip()!r}")
            break
        name, pos = match.group(1).lower(), match.end()
        parts = []
        while True:
            if pos < n and body[pos] == "{":
                end = _balanced_end(body, pos, "{", "}")
                parts.append(body[pos + 1:end])
                pos = end + 1
            elif pos < n and body[pos] == '"':
                end = pos + 1
                depth = 0
                while end < n and not (body[end] == '"' and depth == 0):
                    depth += {"{": 1, "}": -1}.get(body[end], 0)
                    end += 1
                parts.append(body[pos + 1:end])
                pos = end + 1
            else:
                word = re.compile(r"[\w\-:.+/]+").match(body, pos)
                if word is None:
                    raise ValueError(f"no value for {name}")
                parts.append(macros.get(word.group(0).lower(), word.group(0)))
                pos = word.end()
            concat = re.compile(r"\s*#\s*").match(body, pos)
            if concat is None:
                break
            pos = concat.end()
        fields[name] = "".join(parts)
    return fields


def latex_to_text(value: str) -> str:
    """Text a reader expects from a BibTeX value: accents composed, formatting commands and braces gone."""
    s = _ACCENT.sub(lambda m: _LETTERS.get(m.group(2) or m.group(3), m.group(2) or m.group(3)) + _ACCENTS[m.group(1)],
                    value)
    for command, letter in sorted(_LETTERS.items(), key=lambda kv: -len(kv[0])):
        s = re.sub(re.escape(command) + r"(?![A-Za-z])\s?", letter, s)
    for _ in range(3):
        s = _COMMAND.sub(r"\1", s)
    s = s.replace(r"\&", "&").replace(r"\%", "%").replace(r"\_", "_").replace(r"\$", "$").replace("~", " ")
    s = s.replace("---", "—").replace("--", "–").replace("{", "").replace("}", "")
    return unicodedata.normalize("NFC", " ".join(s.split()))


def split_authors(value: str) -> tuple[str, ...]:
    """BibTeX names ('Vaswani, Ashish and Noam Shazeer and others') as 'First Last' each."""
    names, depth, start = [], 0, 0
    for m in re.finditer(r"[{}]|\s+and\s+", value):
        token = m.group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif depth == 0:
            names.append(value[start:m.start()])
            start = m.end()
    names.append(value[start:])
    out = []
    for name in names:
        parts = [latex_to_text(p) for p in _split_top(name, ",")]
        if not parts or parts[0].lower() in ("", "others"):
            continue
        if len(parts) == 1:
            out.append(parts[0])
        elif len(parts) == 2:
            out.append(f"{parts[1]} {parts[0]}".strip())
        else:  # Last, Jr, First
            out.append(f"{parts[2]} {parts[0]} {parts[1]}".strip())
    return tuple(out)


def _split_top(value: str, sep: str) -> list[str]:
    out, depth, current = [], 0, ""
    for c in value:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if c == sep and depth == 0:
            out.append(current)
            current = ""
        else:
            current += c
    return [p.strip() for p in out + [current]]


def file_paths(value: str, base: Path) -> list[Path]:
    """The files a `file` field names, PDFs first. Formats: a bare path (Better BibTeX), 'Description:path:type'
    entries joined by ';' (Zotero, JabRef, with \\: and \\; escapes), ':path:pdf' (Mendeley, whose absolute
    paths lack the leading /). Relative paths are relative to the .bib file's folder."""
    entries = [e for e in re.split(r"(?<!\\);", value) if e.strip()]
    found: list[tuple[bool, Path]] = []
    for entry in entries:
        parts = re.split(r"(?<!\\):", entry)
        if len(parts) >= 3:
            raw = ":".join(parts[1:-1]) if len(parts) > 3 and len(parts[1]) == 1 else parts[1]
            kind = parts[-1].lower()
        else:
            raw, kind = entry, ""
        raw = raw.replace("\\:", ":").replace("\\;", ";").replace("\\\\", "\\").replace("$\\backslash$", "\\").strip()
        if not raw:
            continue
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = base / path if (base / path).exists() or not Path("/" + raw).exists() else Path("/" + raw)
        found.append(("pdf" in kind or path.suffix.lower() == ".pdf", path))
    return [path for is_pdf, path in sorted(found, key=lambda f: not f[0])]


def _entry(key: str, kind: str, fields: dict[str, str], path: Path) -> LibraryEntry:
    text = {name: latex_to_text(value) for name, value in fields.items() if name not in ("file", "author")}
    year_text = text.get("year") or text.get("date") or ""
    year = _MONTHLESS_YEAR.search(year_text)
    pdf, problem = None, ""
    files = file_paths(fields.get("file", ""), path.parent) if fields.get("file") else []
    pdfs = [f for f in files if f.suffix.lower() == ".pdf" or "pdf" in fields.get("file", "").lower()]
    if pdfs:
        pdf = next((f for f in pdfs if f.is_file()), None)
        if pdf is None:
            problem = f"its PDF is not there: {pdfs[0]}"
    return LibraryEntry(
        origin="bibtex", item=f"{path.name}: {key}", citation_key=key, title=text.get("title", ""),
        authors=split_authors(fields.get("author", "") or fields.get("editor", "")),
        year=int(year.group(1)) if year else None, doi=_doi(text.get("doi", "")),
        arxiv_id=_arxiv_id(text), venue=text.get("journal") or text.get("journaltitle") or text.get("booktitle", ""),
        abstract=text.get("abstract", ""), pdf=pdf.resolve() if pdf else None, pdf_problem=problem)


def _doi(value: str) -> str:
    return re.sub(r"(?i)^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", value.strip())


def _arxiv_id(text: dict[str, str]) -> str:
    """An arXiv id the entry names: eprint (with archivePrefix arXiv or eprinttype arxiv), arxivid, an arXiv URL
    or DOI, 'arXiv preprint arXiv:...' in the journal or note."""
    prefix = (text.get("archiveprefix") or text.get("eprinttype") or "").lower()
    for value in (text.get("eprint", "") if prefix in ("arxiv", "") else "", text.get("arxivid", ""),
                  text.get("arxiv", "")):
        if not value:
            continue
        try:
            return parse_ref(value).arxiv_id
        except BadSource:
            continue
    doi = _doi(text.get("doi", ""))
    if doi.lower().startswith("10.48550/arxiv."):
        try:
            return parse_ref(doi[len("10.48550/arxiv."):]).arxiv_id
        except BadSource:
            pass
    refs = extract_refs(" ".join(text.get(k, "") for k in ("url", "journal", "note", "howpublished", "pdf")))
    return refs[0].arxiv_id if refs else ""
