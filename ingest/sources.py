"""Reading lists -> arXiv ids: parse one reference, or pull every reference out of a text file.

Ids end up in file names (cache, mirror), so they are only ever accepted through the strict
regexes below; anything else is a BadSource with a message that says what was wrong.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

# New style (2007-): YYMM.NNNN for 0704-1412, YYMM.NNNNN from 1501. The month and the digit
# count are checked so that things like 2023.12345 or 1706.0376 are refused.
_MONTH = r"(?:0[1-9]|1[0-2])"
NEW_ID = rf"(?:(?:0[7-9]|1[0-4]){_MONTH}\.\d{{4}}|(?:1[5-9]|[2-9]\d){_MONTH}\.\d{{5}})"
# Old style (1991-2007): archive[.SUBJ]/YYMMNNN, e.g. hep-th/9901001, math.GT/0309136.
OLD_ID = r"[a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?/\d{2}(?:0[1-9]|1[0-2])\d{3}"
ID = rf"(?:{NEW_ID}|{OLD_ID})"
VERSION = r"(?:v(?P<version>[1-9]\d{0,2}))?"

_ID_ONLY = re.compile(ID)
_BARE = re.compile(rf"(?P<id>{ID}){VERSION}")
_URL = re.compile(
    rf"(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/(?P<id>{ID}){VERSION}(?:\.pdf)?/?(?:[?#]\S*)?",
    re.IGNORECASE,
)
# In free text only take ids that the context marks as arXiv: a URL or an "arXiv:" prefix.
# The lookarounds stop "2304.137121" or "x1706.03762" from yielding a shorter id.
_IN_TEXT = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|arxiv:\s?)(?P<id>{ID}){VERSION}(?![\d])",
    re.IGNORECASE,
)


class ArxivRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    arxiv_id: str = Field(description="Canonical id without version: 1706.03762 or hep-th/9901001")
    version: int | None = Field(default=None, description="Explicit version (the N of vN), if given")

    @field_validator("arxiv_id")
    @classmethod
    def _strict_id(cls, value: str) -> str:
        # Also guards refs built directly (not via parse_ref): the id becomes a file name later.
        if not _ID_ONLY.fullmatch(value):
            raise ValueError(f"not a canonical arXiv id: {value!r}")
        return value

    def __str__(self) -> str:
        return f"{self.arxiv_id}v{self.version}" if self.version else self.arxiv_id

    @property
    def file_stem(self) -> str:
        """Safe file name stem: old-style ids have a '/', which becomes '_'."""
        return self.arxiv_id.replace("/", "_")


class BadSource(ValueError):
    """An item of a reading list that is not an arXiv id, URL or readable file."""


def _make_ref(m: re.Match[str]) -> ArxivRef:
    arxiv_id, version = m.group("id"), m.group("version")
    if "/" in arxiv_id:  # URLs match case-insensitively: canonical is hep-th, math.GT
        archive, number = arxiv_id.split("/")
        name, _, subject = archive.partition(".")
        arxiv_id = f"{name.lower()}{'.' + subject.upper() if subject else ''}/{number}"
    return ArxivRef(arxiv_id=arxiv_id, version=int(version) if version else None)


def parse_ref(s: str) -> ArxivRef:
    """One arXiv reference: a bare id, arXiv:id, idvN, or an abs/pdf/html URL."""
    text = s.strip()
    if not text:
        raise BadSource("empty reference")
    if text.lower().startswith("arxiv:"):
        text = text[len("arxiv:"):].strip()
    m = _URL.fullmatch(text) or _BARE.fullmatch(text)
    if m is None:
        if "arxiv.org" in text.lower():
            raise BadSource(f"not an arXiv paper URL: {s!r} (expected arxiv.org/abs/<id>, /pdf/<id> or /html/<id>)")
        raise BadSource(
            f"not an arXiv id: {s!r} (expected YYMM.NNNNN like 1706.03762, or archive/YYMMNNN like hep-th/9901001)"
        )
    return _make_ref(m)


def _merge(refs: Iterable[ArxivRef], into: dict[str, int | None]) -> None:
    """De-duplicate by id in first-seen order, keeping the highest explicit version."""
    for ref in refs:
        if ref.arxiv_id not in into:
            into[ref.arxiv_id] = ref.version
        elif ref.version is not None:
            into[ref.arxiv_id] = max(ref.version, into[ref.arxiv_id] or 0)


def extract_refs(text: str) -> list[ArxivRef]:
    """Every arXiv reference in free text or markdown, de-duplicated, in first-seen order."""
    seen: dict[str, int | None] = {}
    _merge((_make_ref(m) for m in _IN_TEXT.finditer(text)), seen)
    return [ArxivRef(arxiv_id=i, version=v) for i, v in seen.items()]


@dataclass
class ReadingList:
    refs: list[ArxivRef] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_sources(items: Iterable[str]) -> ReadingList:
    """Ids, URLs and paths of text/markdown files -> one de-duplicated list plus per-item errors."""
    seen: dict[str, int | None] = {}
    errors: list[str] = []
    for item in items:
        try:
            _merge([parse_ref(item)], seen)
            continue
        except BadSource as exc:
            not_a_ref = str(exc)
        path = Path(item).expanduser()
        if path.is_file():
            try:
                found = extract_refs(path.read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                errors.append(f"cannot read {item}: {exc.strerror or exc}")
                continue
            if not found:
                errors.append(f"no arXiv ids found in {item}")
            _merge(found, seen)
        elif path.exists():
            errors.append(f"{item} is not a file")
        else:
            errors.append(f"{not_a_ref}; and no such file")
    return ReadingList(refs=[ArxivRef(arxiv_id=i, version=v) for i, v in seen.items()], errors=errors)
