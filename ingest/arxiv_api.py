"""The arXiv API's metadata for one id: one GET of the Atom feed (ingest/http.py's client), parsed into a Paper.

https://info.arxiv.org/help/api/user-manual.html: `id_list=<id>` answers a feed with one <entry> per known
id, none for an unknown well-formed id, and an entry whose <id> is under /api/errors for a malformed one.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import httpx

from foundation.types import Paper
from ingest.sources import ArxivRef

ATOM = "{http://www.w3.org/2005/Atom}"
_VERSION_AT_END = re.compile(r"v(\d+)$")


class ApiAnswerError(ValueError):
    """The API answered, but not with a usable entry: `reason` says why in words a user can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def version_number(text: str | None) -> int | None:
    match = _VERSION_AT_END.search(text or "")
    return int(match.group(1)) if match else None


def query(client: httpx.Client, api_url: str, ref: ArxivRef) -> httpx.Response:
    """One request for one id's entry; the caller checks the status and retries."""
    return client.get(api_url, params={"id_list": str(ref), "max_results": 1})


def _text(entry: ET.Element, tag: str) -> str:
    return " ".join((entry.findtext(f"{ATOM}{tag}") or "").split())


def paper_from_feed(feed: bytes, ref: ArxivRef) -> Paper:
    """The Paper (no PDF yet) the feed's entry describes; ApiAnswerError when it has none or an error entry."""
    try:
        root = ET.fromstring(feed)
    except ET.ParseError as exc:
        raise ApiAnswerError(f"arXiv API answered something that is not an Atom feed ({exc})") from exc
    entry = root.find(f"{ATOM}entry")
    entry_id = (entry.findtext(f"{ATOM}id") or "") if entry is not None else ""
    if entry is None or not entry_id or "api/errors" in entry_id:
        detail = f" ({_text(entry, 'summary')})" if entry is not None and _text(entry, "summary") else ""
        raise ApiAnswerError(f"unknown arXiv id: the API has no entry for {ref}{detail}")
    published = entry.findtext(f"{ATOM}published") or ""
    return Paper(
        arxiv_id=ref.arxiv_id,
        version=version_number(entry_id.strip()) or ref.version,
        title=_text(entry, "title"),
        authors=tuple(" ".join((a.findtext(f"{ATOM}name") or "").split()) for a in entry.findall(f"{ATOM}author")),
        year=int(published[:4]) if published[:4].isdigit() else None,
        abstract=_text(entry, "summary"),
    )
