"""Fetcher against a real local HTTP server that speaks arXiv's API; no mocks."""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PAPERS

from foundation.config import Settings
from ingest.arxiv_api import ApiAnswerError, paper_from_feed
from ingest.fetch import FetchError, Fetcher, check_pdf
from ingest.sources import ArxivRef

try:
    from tests.arxiv_server import ArxivTestServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from arxiv_server import ArxivTestServer  # type: ignore[no-redef]

SMALL = ArxivRef(arxiv_id="1907.11692")  # RoBERTa, the smallest PDF (~210 kB), v1 in the manifest
OTHER = ArxivRef(arxiv_id="2305.13245")  # GQA, ~256 kB, v3


@pytest.fixture
def server() -> Iterator[ArxivTestServer]:
    with ArxivTestServer(PAPERS) as srv:
        yield srv


def make_settings(tmp_path: Path, server: ArxivTestServer | None = None, **extra: object) -> Settings:
    base = server.base_url if server else "http://127.0.0.1:9"  # port 9: nothing listens
    values: dict[str, object] = dict(
        home=tmp_path / "home", arxiv_api_url=f"{base}/api/query", arxiv_pdf_url=f"{base}/pdf/{{id}}",
        # 2 s: the in-process server answers in milliseconds, but beside another xdist worker and an eval a 0.5 s
        # limit timed out three tries in a row (the timeout tests set their own, shorter limits)
        arxiv_delay_s=0.01, fetch_timeout_s=2.0, fetch_retries=2, mirror=None,
    )
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


def cache_files(settings: Settings) -> list[str]:
    root = settings.cache_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_network_fetch_gives_metadata_and_a_cached_pdf(tmp_path: Path, server: ArxivTestServer) -> None:
    settings = make_settings(tmp_path, server)
    paper = Fetcher(settings).fetch(SMALL)
    assert paper.title.startswith("RoBERTa")
    assert paper.version == 1 and paper.year == 2019
    assert paper.authors[0] == "Yinhan Liu" and paper.abstract
    assert paper.pdf_path == str(settings.cache_dir / "pdfs" / "1907.11692v1.pdf")
    assert check_pdf(Path(paper.pdf_path)) is None
    assert [r.split("?")[0] for r in server.requests] == ["/api/query", "/pdf/1907.11692v1"]
    assert cache_files(settings) == ["meta/1907.11692v1.json", "pdfs/1907.11692v1.pdf"]


def test_second_fetch_is_a_cache_hit_even_offline(tmp_path: Path, server: ArxivTestServer) -> None:
    settings = make_settings(tmp_path, server)
    first = Fetcher(settings).fetch(SMALL)
    seen = len(server.requests)
    again = Fetcher(settings).fetch(SMALL)
    versioned = Fetcher(settings.model_copy(update={"offline": True})).fetch(ArxivRef(arxiv_id="1907.11692", version=1))
    assert again == first and versioned == first
    assert len(server.requests) == seen


def test_mirror_hit_uses_no_network(tmp_path: Path, server: ArxivTestServer) -> None:
    paper = Fetcher(make_settings(tmp_path, server, mirror=PAPERS)).fetch(OTHER)
    assert paper.pdf_path == str(PAPERS / "2305.13245.pdf")
    assert paper.version == 3 and paper.title.startswith("GQA")
    assert server.requests == []


def test_mirror_entry_with_null_fields_is_still_a_paper(tmp_path: Path) -> None:
    """The shared manifest has "abstract": null for 2211.05100 and "authors": null for 2206.04615."""
    import json

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    entry = next(m for m in json.loads((PAPERS / "manifest.json").read_text()) if m["arxiv_id"] == "1907.11692")
    (mirror / "manifest.json").write_text(json.dumps([{**entry, "abstract": None, "authors": None, "title": None}]))
    shutil.copy(PAPERS / "1907.11692.pdf", mirror)
    paper = Fetcher(make_settings(tmp_path, mirror=mirror, offline=True)).fetch(SMALL)
    assert paper.abstract == "" and paper.authors == () and paper.title == ""


def test_mirror_with_another_version_falls_through(tmp_path: Path, server: ArxivTestServer) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(PAPERS / "manifest.json", mirror)
    shutil.copy(PAPERS / "2305.13245.pdf", mirror)
    settings = make_settings(tmp_path, server, mirror=mirror, offline=True)
    with pytest.raises(FetchError, match="not in the mirror or cache, and offline"):
        Fetcher(settings).fetch(ArxivRef(arxiv_id="2305.13245", version=1))  # mirror holds v3


def test_offline_and_missing_is_a_fetch_error(tmp_path: Path, server: ArxivTestServer) -> None:
    with pytest.raises(FetchError, match="not in the mirror or cache, and offline"):
        Fetcher(make_settings(tmp_path, server, offline=True, mirror=PAPERS)).fetch(ArxivRef(arxiv_id="2005.14165"))
    assert server.requests == []


def test_unknown_id_is_a_fetch_error(tmp_path: Path, server: ArxivTestServer) -> None:
    with pytest.raises(FetchError, match="unknown arXiv id"):
        Fetcher(make_settings(tmp_path, server)).fetch(ArxivRef(arxiv_id="2401.99999"))


def test_an_error_entry_or_a_body_that_is_no_feed_is_a_clear_error() -> None:
    """What arXiv answers for a malformed id (an entry under /api/errors, as its API manual shows), and a
    proxy's HTML page instead of a feed."""
    error_feed = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_2401.99999</id>
<title>Error</title><summary>incorrect id format for 2401.99999</summary></entry></feed>"""
    with pytest.raises(ApiAnswerError, match=r"no entry for 2401.99999 \(incorrect id format for 2401.99999\)"):
        paper_from_feed(error_feed, ArxivRef(arxiv_id="2401.99999"))
    with pytest.raises(ApiAnswerError, match="not an Atom feed"):
        paper_from_feed(b"<html><body>Service temporarily unavailable", SMALL)


def test_503_once_is_retried(tmp_path: Path, server: ArxivTestServer) -> None:
    server.fail_next.update(api=1, pdf=1)
    paper = Fetcher(make_settings(tmp_path, server)).fetch(SMALL)
    assert check_pdf(Path(paper.pdf_path or "")) is None
    assert [r.split("?")[0] for r in server.requests] == ["/api/query"] * 2 + ["/pdf/1907.11692v1"] * 2


def test_persistent_503_gives_up_with_the_reason(tmp_path: Path, server: ArxivTestServer) -> None:
    server.fail_next.update(pdf=99)
    settings = make_settings(tmp_path, server)
    with pytest.raises(FetchError, match="after 3 tries: HTTP 503"):
        Fetcher(settings).fetch(SMALL)
    assert cache_files(settings) == []


def test_a_stall_times_out_then_the_retry_succeeds(tmp_path: Path, server: ArxivTestServer) -> None:
    server.stall_s = 1.5
    server.stall_next.update(api=1, pdf=1)
    started = time.monotonic()
    paper = Fetcher(make_settings(tmp_path, server, fetch_timeout_s=0.3)).fetch(SMALL)
    assert paper.pdf_path and time.monotonic() - started < 5


def test_stalls_beyond_the_retries_are_a_fetch_error(tmp_path: Path, server: ArxivTestServer) -> None:
    server.stall_s = 1.0
    server.stall_next.update(pdf=99)
    settings = make_settings(tmp_path, server, fetch_timeout_s=0.2, fetch_retries=1)
    with pytest.raises(FetchError, match="timed out"):
        Fetcher(settings).fetch(SMALL)
    assert cache_files(settings) == []


def test_api_stalls_and_errors_are_retried_once_per_try_not_stacked(tmp_path: Path, server: ArxivTestServer) -> None:
    server.stall_s = 1.0
    server.stall_next.update(api=99)
    settings = make_settings(tmp_path, server, fetch_timeout_s=0.2, fetch_retries=2)
    with pytest.raises(FetchError, match=r"timed out after 0.2 s \(3 tries\)"):
        Fetcher(settings).fetch(SMALL)
    assert sum(r.startswith("/api/") for r in server.requests) == 3
    server.requests.clear()
    server.stall_next.update(api=0)
    server.fail_next.update(api=99)
    with pytest.raises(FetchError, match=r"HTTP 503 \(3 tries\)"):
        Fetcher(settings).fetch(SMALL)
    assert sum(r.startswith("/api/") for r in server.requests) == 3


def test_truncated_pdf_is_rejected_and_nothing_is_cached(tmp_path: Path, server: ArxivTestServer) -> None:
    server.truncate_pdf = True
    settings = make_settings(tmp_path, server)
    with pytest.raises(FetchError, match="truncated PDF"):
        Fetcher(settings).fetch(SMALL)
    assert cache_files(settings) == []


def test_unreachable_server_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="arXiv API"):
        Fetcher(make_settings(tmp_path, None, fetch_retries=0)).fetch(SMALL)


def test_after_the_api_failed_every_try_later_papers_fail_at_once(tmp_path: Path) -> None:
    """A server on loopback that drops every connection: the first paper tries 1 + fetch_retries times;
    the papers after it fail with the same reason without a connection of their own (they would each
    wait out the retries: 18 s apiece with the default settings)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[int] = []

    def drop_all() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=drop_all, daemon=True).start()
    port = listener.getsockname()[1]
    settings = make_settings(tmp_path, None, arxiv_api_url=f"http://127.0.0.1:{port}/api/query", fetch_retries=2)
    fetcher = Fetcher(settings)
    reasons = []
    for arxiv_id in ("2401.00001", "2401.00002", "2401.00003"):
        with pytest.raises(FetchError) as caught:
            fetcher.fetch(ArxivRef(arxiv_id=arxiv_id))
        reasons.append(str(caught.value).split(": ", 1)[1])
        if arxiv_id == "2401.00001":
            assert len(accepted) == 3  # 1 + fetch_retries
    listener.close()
    assert len(accepted) == 3 and len(set(reasons)) == 1 and "cannot reach the arXiv API" in reasons[0]
    assert Fetcher(settings)._api_down is None  # a new fetcher (a new ingest) tries again
