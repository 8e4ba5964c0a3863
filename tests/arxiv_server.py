"""A real HTTP server on 127.0.0.1 that speaks the arXiv API's Atom format and serves PDFs.

Metadata comes from a mirror-style manifest.json and PDFs from its folder. Switches make it
misbehave the way arXiv sometimes does: 503s, stalls, truncated bodies, unknown ids.
"""
from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

_FEED_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <id>https://arxiv.org/api/test</id>
  <title>arXiv Query: {query}</title>
  <updated>{now}</updated>
  <link href="https://arxiv.org/api/query?{query}" type="application/atom+xml"/>
  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
"""
_ENTRY = """  <entry>
    <id>http://arxiv.org/abs/{vid}</id>
    <title>{title}</title>
    <updated>{updated}</updated>
    <link href="https://arxiv.org/abs/{vid}" rel="alternate" type="text/html"/>
    <link href="https://arxiv.org/pdf/{vid}" rel="related" type="application/pdf" title="pdf"/>
    <summary>{summary}</summary>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <published>{published}</published>
    <arxiv:primary_category term="cs.CL"/>
{authors}  </entry>
"""
_PDF_PATH = re.compile(r"/pdf/(?P<id>[\w.\-/]+?)(?:v(?P<v>\d+))?(?:\.pdf)?$")


class ArxivTestServer:
    """Use as a context manager; `base_url`, `requests` (paths seen) and the switches below."""

    def __init__(self, folder: Path):
        self.folder = folder
        entries = json.loads((folder / "manifest.json").read_text())
        self.manifest: dict[str, dict[str, Any]] = {e["arxiv_id"]: e for e in entries}
        self.requests: list[str] = []
        self.fail_next: dict[str, int] = {"api": 0, "pdf": 0}  # answer 503 this many times
        self.stall_next: dict[str, int] = {"api": 0, "pdf": 0}  # stall this many requests
        self.stall_s = 0.0
        self.truncate_pdf = False
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True  # a stalled handler must not block shutdown
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "ArxivTestServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _take(self, switch: dict[str, int], kind: str) -> bool:
        with self._lock:
            if switch[kind] > 0:
                switch[kind] -= 1
                return True
            return False

    def feed(self, ids: list[str]) -> bytes:
        entries = []
        for arxiv_id in ids:
            meta = self.manifest.get(re.sub(r"v\d+$", "", arxiv_id))
            if meta is None:
                continue  # like arXiv: an unknown (well-formed) id simply has no entry
            version = meta.get("arxiv_version") or "v1"
            updated = datetime.strptime(meta["arxiv_version_date"], "%d %b %Y") if meta.get("arxiv_version_date") else None
            authors = "".join(f"    <author>\n      <name>{escape(a)}</name>\n    </author>\n" for a in meta["authors"])
            entries.append(
                _ENTRY.format(
                    vid=meta["arxiv_id"] + version,
                    title=escape(meta["title"]),
                    summary=escape(meta["abstract"]),
                    published=f"{meta['year']}-01-15T12:00:00Z",
                    updated=(updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else f"{meta['year']}-01-15T12:00:00Z"),
                    authors=authors,
                )
            )
        head = _FEED_HEAD.format(
            query=escape("id_list=" + ",".join(ids)), now=time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            per_page=len(entries), total=len(entries), start=0,
        )
        return (head + "".join(entries) + "</feed>\n").encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): fine

            def do_GET(self) -> None:
                url = urlparse(self.path)
                kind = "api" if url.path == "/api/query" else "pdf"
                server.requests.append(self.path)
                if server._take(server.stall_next, kind):
                    time.sleep(server.stall_s)
                if server._take(server.fail_next, kind):
                    return self._send(503, b"Service Unavailable", "text/plain")
                if kind == "api":
                    ids = [i for i in parse_qs(url.query).get("id_list", [""])[0].split(",") if i]
                    return self._send(200, server.feed(ids), "application/atom+xml; charset=utf-8")
                match = _PDF_PATH.match(url.path)
                meta = server.manifest.get(match.group("id")) if match else None
                pdf = server.folder / f"{match.group('id').replace('/', '_')}.pdf" if match else None
                if meta is None or pdf is None or not pdf.is_file():
                    return self._send(404, b"Not Found", "text/plain")
                body = pdf.read_bytes()
                if server.truncate_pdf:
                    body = body[: len(body) // 2]  # a whole HTTP response carrying half a PDF
                return self._send(200, body, "application/pdf")

        return Handler
