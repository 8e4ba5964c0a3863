"""The same dense index against a real chromadb server (`chroma run`) on 127.0.0.1."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from foundation.types import Chunk
from indexes.dense import DenseIndex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_url(tmp_path):
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(tmp_path / "db"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)
        else:
            pytest.fail("chroma server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_dense_index_on_a_chroma_server(chroma_url, embedder):
    texts = ["Paged attention stores the KV cache in non-contiguous blocks with copy-on-write sharing.",
             "Grouped-query attention uses fewer key-value heads than query heads.",
             "The learning rate is warmed up linearly and then decayed."]
    chunks = [Chunk(id=f"c{i}", arxiv_id=f"2309.0618{i}", page_start=1, page_end=1, char_start=0,
                    char_end=len(t), text=t) for i, t in enumerate(texts)]
    index = DenseIndex(embedder, url=chroma_url)
    index.add(chunks)
    assert index.count() == 3
    assert index.search("copy on write KV cache blocks", 2)[0][0] == "c0"
    assert [cid for cid, _ in index.search("attention heads", 3, arxiv_ids=["2309.06181"])] == ["c1"]
    index.remove(["c0"])
    # A second client sees the same server-side state.
    other = DenseIndex(embedder, url=chroma_url)
    assert other.count() == 2 and "c0" not in [cid for cid, _ in other.search("copy on write", 3)]
    assert np.isclose(other.search(texts[2], 1)[0][1], 1.0, atol=1e-3)
