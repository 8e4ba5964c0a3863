"""Shared fixtures. Each test builds its own index in tmp_path; heavy models load once per session."""
from __future__ import annotations

import json
import os
import shutil
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
    from assistant.config import Settings

    def build(mirror: Path | None = None, **overrides):
        return Settings(home=tmp_path / "home", mirror=mirror, offline=True, arxiv_delay_s=0.0, **overrides)

    return build


@pytest.fixture(scope="session")
def mini_library_home(tmp_path_factory, embedder):
    """An index of the two small papers, built once per session for read-only tests (search, ask)."""
    from assistant.api import Assistant
    from assistant.config import Settings

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


@pytest.fixture(scope="session")
def vllm_settings(tmp_path_factory):
    """Settings for a managed vLLM server of the small model on a port of its own, home in a tmp dir."""
    from assistant.config import PROJECT_ROOT, Settings

    return Settings(home=tmp_path_factory.mktemp("vllm-home"), llm_model=SMALL_MODEL,
                    llm_model_path=PROJECT_ROOT / ".models" / SMALL_MODEL, vllm_port=free_port(),
                    vllm_enforce_eager=True, vllm_max_model_len=2048)


@pytest.fixture(scope="session")
def vllm_url(vllm_settings):
    """Base URL (http://127.0.0.1:PORT/v1) of a real vLLM server; stopped when the session ends."""
    from assistant.server import VLLMServer

    server = VLLMServer(vllm_settings)
    try:
        yield server.ensure_running(progress=print)
    finally:
        server.stop()


@pytest.fixture
def llm(vllm_url):
    from assistant.llm import OpenAICompatibleLLM

    return OpenAICompatibleLLM(vllm_url, SMALL_MODEL, timeout_s=120.0)
