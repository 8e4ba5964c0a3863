"""Shared fixtures. Each test builds its own index in tmp_path; heavy models load once per session."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
PAPERS = SHARED / "papers"
DEV_SET = SHARED / "eval" / "dev.jsonl"
# The two smallest real PDFs: RoBERTa and GQA.
SMALL_IDS = ("1907.11692", "2305.13245")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


# Lanes (pyproject's markers): a test that uses one of these fixtures, directly or through another fixture,
# gets the marker, so `make test-fast` (-m "not llm and not model and not colbert and not slow") leaves it out.
# Tests that load a model or build ColBERT by themselves carry the marker explicitly.
FIXTURE_LANES = {
    "vllm_url": ("llm",),  # the real vLLM server (the `llm` fixture uses it)
    "embedder": ("model",),  # the real MiniLM
    "mini_library_home": ("model", "colbert"),  # ingests two papers with the default indexes (ColBERT too)
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marks in FIXTURE_LANES.items():
            if fixture in item.fixturenames:
                for mark in marks:
                    item.add_marker(mark)


def make_mirror(dest: Path, ids) -> Path:
    """A local mirror folder like ../shared/papers holding only `ids`."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((PAPERS / "manifest.json").read_text())
    for arxiv_id in ids:
        shutil.copy(PAPERS / f"{arxiv_id}.pdf", dest / f"{arxiv_id}.pdf")
    (dest / "manifest.json").write_text(json.dumps([m for m in manifest if m["arxiv_id"] in ids]))
    return dest


@pytest.fixture
def mini_mirror(tmp_path) -> Path:
    return make_mirror(tmp_path / "mirror", SMALL_IDS)


@pytest.fixture(scope="session")
def embedder():
    from indexes.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


@pytest.fixture
def settings_for(tmp_path):
    """Settings with home in tmp_path, offline, no config file from the user's home."""
    from foundation.config import Settings

    def build(mirror: Path | None = None, **overrides):
        # BM25 only by default: a ColBERT build per test costs seconds; mini_library_home and the
        # ColBERT tests cover it.
        overrides.setdefault("indexes", ["bm25"])
        return Settings(home=tmp_path / "home", mirror=mirror, offline=True, arxiv_delay_s=0.0, **overrides)

    return build


@pytest.fixture(scope="session")
def mini_library_home(tmp_path_factory, embedder):
    """An index of the two small papers, built once per session for read-only tests (search, ask)."""
    from assistant.api import Assistant
    from foundation.config import Settings

    root = tmp_path_factory.mktemp("mini")
    mirror = make_mirror(root / "mirror", SMALL_IDS)
    settings = Settings(home=root / "home", mirror=mirror, offline=True)
    a = Assistant(settings, embedder=embedder)
    results = a.ingest(list(SMALL_IDS))
    assert all(r.status.value == "ok" for r in results), results
    a.close()
    return settings


# --- the real local vLLM server (0.5B model), started once per session for tests marked `llm`
SMALL_MODEL = "qwen2.5-coder-0.5b-instruct"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROOT = Path(__file__).resolve().parent.parent


def run_cli(home: Path, *args: str, mirror: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """The real CLI as a user runs it, offline, BM25 only, with none of this shell's PAPER_ASSISTANT_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAPER_ASSISTANT_")}
    clean.update({"PAPER_ASSISTANT_INDEXES": '["bm25"]', "COLUMNS": "400", **env})  # no wrapping: whole lines
    base = [sys.executable, "-m", "assistant", "--home", str(home), "--offline"]
    base += ["--mirror", str(mirror)] if mirror is not None else []
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=600, env=clean, cwd=ROOT)


@pytest.fixture
def misbehaving_llm(tmp_path):
    """start(mode, **env) -> base URL of tests/misbehaving_llm.py on a free loopback port; its request log is
    tmp_path / "llm.log"."""
    procs: list[subprocess.Popen] = []

    def start(mode: str, **env: str) -> str:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "misbehaving_llm.py"), str(port)],
                                env={**os.environ, "LLM_MODE": mode, "LLM_LOG": str(tmp_path / "llm.log"), **env},
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def vllm_settings(tmp_path_factory):
    """Settings for a managed vLLM server of the small model on a port of its own, home in a tmp dir."""
    from foundation.config import PROJECT_ROOT, Settings

    return Settings(home=tmp_path_factory.mktemp("vllm-home"), llm_model=SMALL_MODEL,
                    llm_model_path=PROJECT_ROOT / ".models" / SMALL_MODEL, vllm_port=free_port(),
                    vllm_enforce_eager=True, vllm_max_model_len=4096)


@pytest.fixture(scope="session")
def vllm_url(vllm_settings):
    """Base URL (http://127.0.0.1:PORT/v1) of a real vLLM server; stopped when the session ends."""
    from assistant.llm.server import VLLMServer

    shared = _shared_dev_server()
    if shared:  # a developer's already-running server of the same model: no second 6 GiB process
        yield shared
        return
    server = VLLMServer(vllm_settings)
    try:  # kept: the suite's clients bypass keep-alive's clock, and a quiet stretch must not stop it
        yield server.ensure_running(progress=print, keep=True)
    finally:
        server.stop()


def _shared_dev_server() -> str | None:
    """PAPER_ASSISTANT_TEST_LLM_URL (default http://127.0.0.1:8800/v1) when it serves the small model."""
    import httpx

    url = os.environ.get("PAPER_ASSISTANT_TEST_LLM_URL", "http://127.0.0.1:8800/v1")
    try:
        served = [m["id"] for m in httpx.get(f"{url}/models", timeout=2).json()["data"]]
    except Exception:
        return None
    return url if SMALL_MODEL in served else None


@pytest.fixture
def llm(vllm_url):
    from assistant.llm.client import OpenAICompatibleLLM

    return OpenAICompatibleLLM(vllm_url, SMALL_MODEL, timeout_s=120.0)


# --- real chunks of small papers, for the BM25 / ColBERT index tests (no index, no embedder)
INDEX_TEST_IDS = ("1910.01108", "2305.13245", "2310.06825", "1707.06347")  # DistilBERT, GQA, Mistral 7B, PPO


def _chunks_of(arxiv_id: str):
    """Chunks of one real paper: ingest's parser and chunker when they import, else plain
    200-token windows (40 overlap) of pypdf page text."""
    try:
        from ingest.chunk import HFTokenizer, chunk_paper
        from ingest.parse import parse_pdf
    except ImportError:
        return _window_chunks(arxiv_id)
    return chunk_paper(parse_pdf(PAPERS / f"{arxiv_id}.pdf", arxiv_id), HFTokenizer())


def _window_chunks(arxiv_id: str, size: int = 200, overlap: int = 40):
    from pypdf import PdfReader
    from transformers import AutoTokenizer

    from foundation.types import Chunk
    from indexes.embedder import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    starts, text = [], ""
    for page in PdfReader(str(PAPERS / f"{arxiv_id}.pdf")).pages:
        starts.append(len(text))
        text += (page.extract_text() or "") + "\n"
    spans = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    page_of = lambda off: sum(1 for s in starts if s <= off)  # noqa: E731
    chunks = []
    for i in range(0, len(spans), size - overlap):
        window = spans[i:i + size]
        a, b = window[0][0], window[-1][1]
        ps, pe = page_of(a), page_of(max(a, b - 1))
        chunks.append(Chunk(id=Chunk.make_id(arxiv_id, None, ps, pe, a), arxiv_id=arxiv_id, page_start=ps,
                            page_end=pe, char_start=a, char_end=b, text=text[a:b], n_tokens=len(window)))
        if i + size >= len(spans):
            break
    return chunks


@pytest.fixture(scope="session")
def paper_chunks():
    """{arxiv_id: [Chunk, ...]} for INDEX_TEST_IDS (four small real papers, ~160 chunks)."""
    return {arxiv_id: _chunks_of(arxiv_id) for arxiv_id in INDEX_TEST_IDS}


def kill_at_marker(script: str, marker: str, cwd: Path, before_kill=lambda: None) -> None:
    """Run `script` in a fresh Python, wait for the line starting with `marker` on its stdout, then SIGKILL it
    there (as a crash or `kill -9` would); `before_kill` checks the state it is killed in."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", script], cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(marker), line
        before_kill()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
