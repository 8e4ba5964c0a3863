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
from typing import Any

import httpx
import pypdf
import requests

from foundation.config import Settings
from foundation.types import Paper
from ingest.sources import ArxivRef

_USER_AGENT = "paper-assistant/0.1 (offline-first research assistant)"
_VERSION_AT_END = re.compile(r"v(\d+)$")
_RETRY_STATUS = {429, 500, 502, 503, 504}


# After the API failed every try (no connection, or timeouts), the papers after it fail at once with the same
# reason for this long instead of each waiting out its own retries: offline with a reading list of 39 ids
# outside the mirror, the first `make run` spent 18 s on each of them (12 min), most of its ingest time.
API_DOWN_HOLD_S = 300.0


class FetchError(RuntimeError):
    """A paper could not be fetched; `reason` says why in words a user can act on."""

    def __init__(self, arxiv_id: str, reason: str):
        super().__init__(f"{arxiv_id}: {reason}")
        self.arxiv_id = arxiv_id
        self.reason = reason


class _RetryingSession(requests.Session):
    """The arXiv API session: every request times out (a stalled call would hang forever) and urllib3
    retries connection errors, read timeouts and 429/5xx answers with backoff, the one retry layer:
    the arxiv client's own retries are off, so attempts never multiply."""

    def __init__(self, timeout_s: float, retries: int, backoff_s: float):
        super().__init__()
        self.timeout_s = timeout_s
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                      status_forcelist=sorted(_RETRY_STATUS), allowed_methods=["GET"], raise_on_status=False,
                      backoff_factor=backoff_s, respect_retry_after_header=False)
        for prefix in ("http://", "https://"):
            self.mount(prefix, HTTPAdapter(max_retries=retry))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def arxiv_client(api_url: str, delay_s: float, retries: int, timeout_s: float):
    """The arxiv package's Client pointed at `api_url`, sending through a session that times out and retries.

    arxiv.Client takes neither an endpoint nor a session as arguments: both are set on the instance,
    where the package reads them (`query_url_format`, `_session`).
    """
    import arxiv  # imported here: only network fetches need it

    client = arxiv.Client(page_size=10, delay_seconds=delay_s, num_retries=0)
    client.query_url_format = api_url + "?{}"
    client._session = _RetryingSession(timeout_s, retries, backoff_s=max(0.05, delay_s))
    return client


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


def _version_number(text: str | None) -> int | None:
    match = _VERSION_AT_END.search(text or "")
    return int(match.group(1)) if match else None


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
        self._client: Any = None  # arxiv.Client, built on first network use
        self._http: httpx.Client | None = None
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
        held = _version_number(str(self._mirror_manifest().get(ref.arxiv_id, {}).get("arxiv_version") or ""))
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
        version = _version_number(str(meta.get("arxiv_version") or ""))
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
    def _arxiv_client(self) -> Any:
        if self._client is None:
            s = self.settings
            self._client = arxiv_client(s.arxiv_api_url, s.arxiv_delay_s, s.fetch_retries, s.fetch_timeout_s)
        return self._client

    def _query_metadata(self, ref: ArxivRef) -> Paper:
        import arxiv

        search = arxiv.Search(id_list=[str(ref)], max_results=1)
        tries = f"{self.settings.fetch_retries + 1} tries"
        try:  # the session retries (urllib3); the client does not
            results = list(self._arxiv_client().results(search))
        except arxiv.HTTPError as exc:
            raise FetchError(ref.arxiv_id, f"arXiv API answered HTTP {exc.status} ({tries})") from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            if "timed out" in str(exc).lower():
                reason = f"arXiv API timed out after {self.settings.fetch_timeout_s:g} s ({tries})"
            else:
                reason = f"cannot reach the arXiv API at {self.settings.arxiv_api_url}"
            self._api_down = (time.monotonic(), reason)
            raise FetchError(ref.arxiv_id, reason) from exc
        except (requests.RequestException, arxiv.ArxivError) as exc:
            raise FetchError(ref.arxiv_id, f"arXiv API request failed: {exc}") from exc
        finally:
            self._last_network_at = time.monotonic()
        if not results or "api/errors" in results[0].entry_id:
            detail = f" ({results[0].summary.strip()})" if results else ""
            raise FetchError(ref.arxiv_id, f"unknown arXiv id: the API has no entry for {ref}{detail}")
        result = results[0]
        return Paper(
            arxiv_id=ref.arxiv_id,
            version=_version_number(result.entry_id) or ref.version,
            title=" ".join(result.title.split()),
            authors=tuple(a.name for a in result.authors),
            year=result.published.year if result.published else None,
            abstract=" ".join(result.summary.split()),
        )

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

    def _backoff(self, attempt: int) -> None:
        time.sleep(min(60.0, max(self.settings.arxiv_delay_s, 0.05) * 2**attempt))

    def _wait_politely(self) -> None:
        wait = self._last_network_at + self.settings.arxiv_delay_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _download_pdf(self, url: str, dest: Path, arxiv_id: str) -> None:
        """Download url to dest atomically, retrying transient failures; dest is a checked PDF or absent."""
        if self._http is None:
            self._http = httpx.Client(
                timeout=self.settings.fetch_timeout_s, follow_redirects=True, headers={"user-agent": _USER_AGENT}
            )
        tries = self.settings.fetch_retries + 1
        problem = ""
        for attempt in range(tries):
            if attempt:
                self._backoff(attempt - 1)
            self._wait_politely()
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, self._http.stream("GET", url) as resp:
                    if resp.status_code == 404:
                        raise FetchError(arxiv_id, f"PDF not found (HTTP 404) at {url}")
                    if resp.status_code in _RETRY_STATUS:
                        problem = f"HTTP {resp.status_code} from {url}"
                        continue
                    if resp.status_code != 200:
                        raise FetchError(arxiv_id, f"PDF download refused (HTTP {resp.status_code}) at {url}")
                    for block in resp.iter_bytes(1 << 16):
                        out.write(block)
                problem = check_pdf(tmp) or ""
                if not problem:
                    os.replace(tmp, dest)
                    return
            except httpx.TimeoutException:
                problem = f"timed out after {self.settings.fetch_timeout_s:g} s at {url}"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc}) at {url}"
            finally:
                self._last_network_at = time.monotonic()
                tmp.unlink(missing_ok=True)
        raise FetchError(arxiv_id, f"PDF download failed after {tries} tries: {problem}")
