"""One end-to-end run against the real local model (0.5B on vLLM): a tiny tree, then a cited draft."""
from __future__ import annotations

import re
import shutil

import pytest

from assistant.api import Assistant
from foundation.text import split_sentences
from foundation.config import Settings
from indexes.raptor import TreeStore, leaves_of
from tests.conftest import SMALL_IDS

GQA = SMALL_IDS[1]


@pytest.mark.llm
def test_real_model_builds_a_tiny_tree_and_a_cited_draft(tmp_path, mini_library_home, embedder, llm):
    home = tmp_path / "home"
    shutil.copytree(mini_library_home.home, home)
    a = Assistant(Settings(home=home, offline=True, raptor_summary_tokens=60), embedder=embedder, llm=llm)
    report = a.build_tree([GQA], topics=False, reducer="pca")
    assert report.papers_built == [GQA] and report.fallbacks == 0
    assert report.summaries >= 2 and report.llm_calls <= report.summaries + report.retries + report.splits * 8
    tree = TreeStore(a.library)
    root = tree.root_of(GQA)
    assert root is not None and len(root.text.split()) >= 5
    assert len(leaves_of(a.library.store, root.id)) == len(a.library.store.chunks_of(GQA, 0))
    # Summaries are capped at ~60 tokens (the cap plus cleanup can only shorten them).
    assert all(c.n_tokens <= 90 for c in a.library.store.chunks_of(GQA, None) if c.level)
    draft = a.summarize(papers=[GQA], length="short")
    assert draft.tree_papers == (GQA,) and draft.citations
    assert all(re.search(r"\[\d+\]", s) for s in split_sentences(draft.text))
    assert all(c.arxiv_id == GQA and c.page_start >= 1 for c in draft.citations)
