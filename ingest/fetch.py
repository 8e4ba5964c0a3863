"""ArxivRef -> Paper with a verified local PDF: mirror folder, then cache, then the arXiv network.

The cache is keyed by id and version (pdfs/<stem>v<N>.pdf + meta/<stem>v<N>.json). Files only
appear there whole (temp file + os.replace), the PDF before its metadata, so a meta file
always means a complete, checked PDF.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx
import pypdf

from foundation.config import Settings
from foundation.types import Paper
from ingest import arxiv_api
from ingest.arxiv_api import ApiAnswerError, version_number
from ingest.http import Transient, check_status, make_client, transport_errors_are_transient, with_retries
from ingest.sources import ArxivRef

# After the API failed every try (no connection, or timeouts), the papers after it fail at once with the same
# reason for this long instead of each waiting out its own retries: offline with a reading list of 39 ids
# outside the mirror, the first `make run` spent 18 s on each of them (12 min), most of its ingest time.
API_DOWN_HOLD_S = 300.0
T = TypeVar("T")


class FetchError(RuntimeError):
    """A paper could not be fetched; `reason` says why in words a user can act on."""

    def __init__(self, arxiv_id: str, reason: str):
        super().__init__(f"{arxiv_id}: {reason}")
        self.arxiv_id = arxiv_id
        self.reason = reason


def check_pdf(path: Path) -> str | None:
    """None if path is a whole PDF that pypdf can open, else what is wrong with it."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(5)
        fh.seek(max(0, size - 1024))
        tail = fh.read()
    if head != b"%PDF-":
        return "not a PDF (no %PDF- header)"
    if b"%%EOF" not in tail:
        return "truncated PDF (no %%EOF near the end)"
    try:
        if len(pypdf.PdfReader(path).pages) == 0:
            return "PDF has no pages"
    except Exception as exc:  # pypdf raises many kinds; all mean "unusable"
        return f"pypdf cannot open it ({type(exc).__name__}: {exc})"
    return None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Fetcher:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._http: httpx.Client | None = None  # built on first network use
        self._manifest: dict[str, dict[str, Any]] | None = None
        self._last_network_at = 0.0  # monotonic time of our last request to arXiv
        self._api_down: tuple[float, str] | None = None  # when the API last failed every try, and how

    # ---------------------------------------------------------------- public
    def fetch(self, ref: ArxivRef) -> Paper:
        """Mirror, then cache, then (unless offline) the network; FetchError if none works."""
        paper = self._from_mirror(ref) or self._from_cache(ref)
        if paper is not None:
            return paper
        if self.settings.offline:
            problem = self._mirror_problem(ref)
            raise FetchError(ref.arxiv_id, problem or "not in the mirror or cache, and offline")
        if self._api_down and time.monotonic() - self._api_down[0] < API_DOWN_HOLD_S:
            raise FetchError(ref.arxiv_id, self._api_down[1])
        return self._from_network(ref)

    def metadata(self, ref: ArxivRef) -> Paper | None:
        """The arXiv record of an id printed on a PDF from disk, without its PDF: the mirror's manifest, the
        cache, or (online) the API; None when none has it or the API fails (the PDF's own metadata is used)."""
        entry = self._mirror_manifest().get(ref.arxiv_id)
        if entry:
            return Paper(arxiv_id=ref.arxiv_id, version=version_number(str(entry.get("arxiv_version") or "")),
                         title=entry.get("title") or "", authors=tuple(entry.get("authors") or ()),
                         year=entry.get("year"), abstract=entry.get("abstract") or "")
        cached = self._from_cache(ref)
        if cached is not None or self.settings.offline:
            return cached
        if self._api_down and time.monotonic() - self._api_down[0] < API_DOWN_HOLD_S:
            return None
        try:
            return self._query_metadata(ref)
        except FetchError:
            return None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---------------------------------------------------------------- mirror
    def _mirror_manifest(self) -> dict[str, dict[str, Any]]:
        if self._manifest is None:
            self._manifest = {}
            path = self.settings.mirror / "manifest.json" if self.settings.mirror else None
            if path is not None and path.is_file():
                entries = json.loads(path.read_text(encoding="utf-8"))
                self._manifest = {e["arxiv_id"]: e for e in entries if isinstance(e, dict) and "arxiv_id" in e}
        return self._manifest

    def _mirror_problem(self, ref: ArxivRef) -> str | None:
        """Why a PDF present in the mirror was not used, so the user learns the real cause."""
        pdf = self.settings.mirror / f"{ref.file_stem}.pdf" if self.settings.mirror else None
        if pdf is None or not pdf.is_file():
            return None
        held = version_number(str(self._mirror_manifest().get(ref.arxiv_id, {}).get("arxiv_version") or ""))
        if ref.version is not None and held is not None and held != ref.version:
            return f"v{ref.version} is not in the mirror or cache, and offline (the mirror holds v{held})"
        problem = check_pdf(pdf)
        return f"mirror copy {pdf.name} is unusable: {problem}" if problem else None

    def _from_mirror(self, ref: ArxivRef) -> Paper | None:
        if self.settings.mirror is None:
            return None
        pdf = self.settings.mirror / f"{ref.file_stem}.pdf"
        if not pdf.is_file():
            return None
        meta = self._mirror_manifest().get(ref.arxiv_id, {})
        version = version_number(str(meta.get("arxiv_version") or ""))
        if ref.version is not None and version is not None and version != ref.version:
            return None  # the mirror holds another version than the one asked for
        if version is None:
            version = ref.version  # a mirror without versions serves the one asked for
        if check_pdf(pdf) is not None:
            return None  # a broken mirror copy should not hide a good cached or remote one
        return Paper(
            arxiv_id=ref.arxiv_id,
            version=version,
            title=meta.get("title") or "",
            authors=tuple(meta.get("authors") or ()),
            year=meta.get("year"),
            abstract=meta.get("abstract") or "",  # null in some manifests (2211.05100)
            pdf_path=str(pdf),
        )

    # ---------------------------------------------------------------- cache
    @property
    def _pdf_dir(self) -> Path:
        return self.settings.cache_dir / "pdfs"

    @property
    def _meta_dir(self) -> Path:
        return self.settings.cache_dir / "meta"

    @staticmethod
    def _cache_name(ref: ArxivRef, version: int | None) -> str:
        return f"{ref.file_stem}v{version}" if version else ref.file_stem

    def _from_cache(self, ref: ArxivRef) -> Paper | None:
        if not self._meta_dir.is_dir():
            return None
        if ref.version is not None:
            candidates = [self._meta_dir / f"{self._cache_name(ref, ref.version)}.json"]
        else:  # no version asked for: the newest one we hold
            pattern = re.compile(rf"{re.escape(ref.file_stem)}(?:v(\d+))?\.json")
            found = [(int(m.group(1) or 0), p) for p in self._meta_dir.iterdir() if (m := pattern.fullmatch(p.name))]
            candidates = [p for _, p in sorted(found, reverse=True)]
        for meta_path in candidates:
            if not meta_path.is_file():
                continue
            paper = Paper.model_validate_json(meta_path.read_text(encoding="utf-8"))
            pdf = self._pdf_dir / f"{meta_path.stem}.pdf"
            if pdf.is_file() and check_pdf(pdf) is None:
                return paper.model_copy(update={"pdf_path": str(pdf)})
        return None

    # ---------------------------------------------------------------- network
    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = make_client(self.settings.fetch_timeout_s)
        return self._http

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """attempt() under ingest/http.py's one retry policy, each try after the polite delay; every try,
        failed or not, restarts the delay's clock."""
        def timed() -> T:
            try:
                return attempt()
            finally:
                self._last_network_at = time.monotonic()

        s = self.settings
        return with_retries(timed, s.fetch_retries + 1, backoff_s=max(s.arxiv_delay_s, 0.05),
                            before_each=self._wait_politely)

    def _wait_politely(self) -> None:
        wait = self._last_network_at + self.settings.arxiv_delay_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _query_metadata(self, ref: ArxivRef) -> Paper:
        url = self.settings.arxiv_api_url

        def attempt() -> httpx.Response:
            with transport_errors_are_transient(url, self.settings.fetch_timeout_s):
                response = arxiv_api.query(self._client(), url, ref)
            check_status(response, url)
            return response

        tries = f"{self.settings.fetch_retries + 1} tries"
        try:
            response = self._retrying(attempt)
        except Transient as exc:
            if exc.timed_out:
                reason = f"arXiv API timed out after {self.settings.fetch_timeout_s:g} s ({tries})"
            elif exc.unreachable:
                reason = f"cannot reach the arXiv API at {url}"
            else:  # it answered 429/5xx every time: there, but refusing
                raise FetchError(ref.arxiv_id, f"arXiv API answered HTTP {exc.status} ({tries})") from exc
            self._api_down = (time.monotonic(), reason)
            raise FetchError(ref.arxiv_id, reason) from exc
        if response.status_code != 200:
            raise FetchError(ref.arxiv_id, f"arXiv API answered HTTP {response.status_code}")
        try:
            return arxiv_api.paper_from_feed(response.content, ref)
        except ApiAnswerError as exc:
            raise FetchError(ref.arxiv_id, exc.reason) from exc

    def _from_network(self, ref: ArxivRef) -> Paper:
        paper = self._query_metadata(ref)
        versioned = ArxivRef(arxiv_id=ref.arxiv_id, version=paper.version)
        cached = self._from_cache(versioned) if ref.version is None else None
        if cached is not None:  # we already hold the latest version under its number
            return cached
        name = self._cache_name(ref, paper.version)
        self._pdf_dir.mkdir(parents=True, exist_ok=True)
        self._meta_dir.mkdir(parents=True, exist_ok=True)
        pdf = self._pdf_dir / f"{name}.pdf"
        self._download_pdf(self.settings.arxiv_pdf_url.format(id=str(versioned)), pdf, ref.arxiv_id)
        paper = paper.model_copy(update={"pdf_path": str(pdf)})
        _atomic_write_text(self._meta_dir / f"{name}.json", paper.model_dump_json(indent=1))
        return paper

    def _download_pdf(self, url: str, dest: Path, arxiv_id: str) -> None:
        """Download url to dest atomically, retrying transient failures; dest is a checked PDF or absent."""
        def attempt() -> None:
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, transport_errors_are_transient(url, self.settings.fetch_timeout_s), \
                        self._client().stream("GET", url) as resp:
                    if resp.status_code == 404:
                        raise FetchError(arxiv_id, f"PDF not found (HTTP 404) at {url}")
                    check_status(resp, url)
                    if resp.status_code != 200:
                        raise FetchError(arxiv_id, f"PDF download refused (HTTP {resp.status_code}) at {url}")
                    for block in resp.iter_bytes(1 << 16):
                        out.write(block)
                problem = check_pdf(tmp)
                if problem:  # a torn body: the next try may get it whole
                    raise Transient(problem)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)

        try:
            self._retrying(attempt)
        except Transient as exc:
            raise FetchError(arxiv_id, f"PDF download failed after {self.settings.fetch_retries + 1} tries: "
                                       f"{exc.problem}") from exc
