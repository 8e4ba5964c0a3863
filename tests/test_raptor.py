"""Summary trees for two small real papers (RoBERTa, GQA) with the real embedder and a scripted summariser:
end to end, incremental add, resume after a kill, removal, splitting, bad replies, a one-chunk paper."""
from __future__ import annotations

import re
import shutil

import pytest

from assistant.api import Assistant
from foundation.config import Settings
from assistant.llm.protocol import LLMError
from foundation.types import Chunk, Paper, PaperStatus
from assistant.summaries.build import TreeBuilder, _Job
from assistant.summaries.config import TreeConfig
from indexes.raptor import CORPUS_ID, TOPIC_LEVEL, TreeStore, leaves_of
from tests.conftest import SMALL_IDS

ROBERTA, GQA = SMALL_IDS
PASSAGE = re.compile(r"^\[\d+\] \(.*?\)\n(.*?)(?=\n\n\[\d+\] |\n\nWrite )", re.S | re.M)


class Summariser:
    """A fake LLM that 'summarises' by taking the first words of each numbered passage in the prompt.

    kill_after: raise (as a killed process would stop) once that many calls were made.
    script: replies to return first, in order, before summarising ('' = empty reply).
    """

    model = "fake-summariser"

    def __init__(self, kill_after: int | None = None, script: list[str] | None = None):
        self.calls: list[str] = []
        self.kill_after = kill_after
        self.script = list(script or [])

    def complete(self, messages, *, max_tokens=512, temperature=0.0, json_schema=None, stop=None):
        prompt = messages[-1]["content"]
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise RuntimeError("killed")
        self.calls.append(prompt)
        if self.script:
            reply = self.script.pop(0)
            if reply == "":
                raise LLMError("empty reply from fake (finish_reason=stop)")
            return reply
        bodies = [" ".join(m.split()[:12]) for m in PASSAGE.findall(prompt)] or [" ".join(prompt.split()[:20])]
        return " ".join(b.rstrip(".") + "." for b in bodies[:4])


def _assistant(home, embedder, llm, **overrides) -> Assistant:
    return Assistant(Settings(home=home, offline=True, raptor_summary_tokens=60, **overrides), embedder=embedder, llm=llm)


@pytest.fixture
def home(tmp_path, mini_library_home):
    """A private copy of the session's two-paper index (ingest is the slow part; each test owns its copy)."""
    dest = tmp_path / "home"
    shutil.copytree(mini_library_home.home, dest)
    return dest


def build(a: Assistant, **kw):
    return a.build_tree(reducer="pca", context_tokens=2048, **kw)


def tree_of(a: Assistant) -> TreeStore:
    return TreeStore(a.library)


def test_two_papers_end_to_end(home, embedder):
    llm = Summariser()
    a = _assistant(home, embedder, llm)
    report = build(a)
    assert sorted(report.papers_built) == sorted(SMALL_IDS) and not report.papers_failed
    # A retry (a table row's extract can read as a reply that repeats itself) costs a call, not a summary.
    assert report.summaries + report.retries == len(llm.calls) == report.llm_calls and report.topics_written == 1
    store, tree = a.library.store, tree_of(a)
    for aid in SMALL_IDS:
        root = tree.root_of(aid)
        leaves = store.chunks_of(aid, 0)
        assert root is not None and root.level >= 1 and root.arxiv_id == aid
        # Every leaf is under the root, and the root's pages span the paper's.
        assert {c.id for c in leaves_of(store, root.id)} == {c.id for c in leaves}
        assert root.page_start == min(c.page_start for c in leaves) and root.page_end == max(c.page_end for c in leaves)
        for node in store.chunks_of(aid, level=None):
            if node.level:
                assert node.children and set(store.chunks(list(node.children))) == set(node.children)
                assert all(k.level == node.level - 1 or (node.level == root.level and k.level < node.level)
                           for k in store.chunks(list(node.children)).values())
    [topic] = store.chunks_of(CORPUS_ID, TOPIC_LEVEL)
    assert set(topic.children) == {tree.root_of(p).id for p in SMALL_IDS}
    assert a.library.dense.count() == store.count_chunks(None)

    # Collapsed retrieval mixes levels within the token budget; a level filter holds.
    hits = a.search("grouped-query attention with fewer key-value heads", mode="collapsed", k=50)
    assert sum(h.chunk.n_tokens for h in hits) <= a.settings.collapsed_budget_tokens
    assert {h.chunk.level for h in hits} - {0}, "no summary node came back"
    assert hits[0].chunk.arxiv_id == GQA
    only = a.search("grouped-query attention", mode="collapsed:1", k=20)
    assert only and {h.chunk.level for h in only} == {1}
    scoped = a.search("training data size", mode="collapsed", k=20, papers=[ROBERTA])
    assert {h.chunk.arxiv_id for h in scoped} == {ROBERTA}
    assert "collapsed" in a.modes()

    # Nothing to do the second time.
    again = build(a)
    assert again.summaries == 0 and sorted(again.papers_skipped) == sorted(SMALL_IDS) and again.topics_written == 0
    st = tree.status()
    assert sorted(st.with_tree) == sorted(SMALL_IDS) and st.topics_ok == 1 and st.last_run["summaries"] == 0


def test_incremental_add_builds_only_the_new_paper(home, embedder):
    a = _assistant(home, embedder, Summariser())
    first = build(a, papers=[GQA])
    assert first.papers_built == [GQA] and first.topics_written == 0  # one tree: no topic yet
    gqa_nodes = {c.id for c in a.library.store.chunks_of(GQA, None) if c.level}
    llm = Summariser()
    a2 = _assistant(home, embedder, llm)
    second = build(a2)
    assert second.papers_built == [ROBERTA] and second.papers_skipped == [GQA]
    assert {c.id for c in a2.library.store.chunks_of(GQA, None) if c.level} == gqa_nodes
    assert all("GQA" not in p.split("\n")[0] for p in llm.calls[:-1])  # only RoBERTa's summaries, then the topic
    assert second.topics_written == 1


def test_resume_after_a_kill_mid_level(home, embedder):
    killed = Summariser(kill_after=5)
    a = _assistant(home, embedder, killed, raptor_concurrency=2)
    with pytest.raises(RuntimeError, match="killed"):
        build(a, papers=[ROBERTA], topics=False)
    done = [c for c in a.library.store.chunks_of(ROBERTA, None) if c.level]
    assert 1 <= len(done) <= 5 and tree_of(a).tree_of(ROBERTA) is None

    fresh = Summariser()
    b = _assistant(home, embedder, fresh)
    report = build(b, papers=[ROBERTA], topics=False)
    assert report.papers_built == [ROBERTA] and report.reused == len(done)
    # Nothing finished before the kill was summarised again, and the resumed tree is complete.
    assert report.summaries + report.retries == len(fresh.calls) == report.llm_calls
    nodes = [c for c in b.library.store.chunks_of(ROBERTA, None) if c.level]
    assert {c.id for c in done} <= {c.id for c in nodes}
    assert len(nodes) == len(done) + report.summaries
    root = tree_of(b).root_of(ROBERTA)
    assert len(leaves_of(b.library.store, root.id)) == len(b.library.store.chunks_of(ROBERTA, 0))


def test_removed_paper_takes_its_nodes_and_stales_its_topics(home, embedder):
    a = _assistant(home, embedder, Summariser())
    build(a)
    [topic] = a.library.store.chunks_of(CORPUS_ID, TOPIC_LEVEL)
    assert a.remove(ROBERTA)
    store = a.library.store
    assert store.chunks_of(ROBERTA, None) == []
    assert not set(a.library.dense.ids_of(ROBERTA))
    assert store.chunks([topic.id]) == {} and topic.id not in a.library.dense.ids_of(CORPUS_ID)
    st = tree_of(a).status()
    assert st.topics_stale == 1 and st.with_tree == [GQA]
    hits = a.search("dynamic masking BERT pretraining", mode="collapsed", k=30)
    assert all(h.chunk.arxiv_id != ROBERTA and h.chunk.id != topic.id for h in hits)
    # Next build: with one paper left there is no topic; the stale mark is cleared, GQA is untouched.
    report = build(a)
    assert report.summaries == 0 and report.papers_skipped == [GQA]
    st = tree_of(a).status()
    assert st.topics_stale == 0 and st.topics_ok == 0


def test_oversized_inputs_are_split_never_truncated(home, embedder):
    llm = Summariser()
    a = _assistant(home, embedder, llm)
    # A budget below one passage's size: every passage must be split into pieces and summarised whole.
    report = a.build_tree([GQA], reducer="pca", topics=False, context_tokens=2048, max_input_tokens=120)
    assert report.papers_built == [GQA] and report.splits > 0
    count = a.library.embedder.count_tokens
    for prompt in llm.calls:
        body = "\n\n".join(PASSAGE.findall(prompt))
        assert count(body) <= 120 * 1.6  # margins of the per-piece token count
    all_words = " ".join(c.text for c in a.library.store.chunks_of(GQA, 0)).split()
    seen = " ".join(" ".join(PASSAGE.findall(p)) for p in llm.calls).split()
    assert set(all_words) <= set(seen)  # every word of the paper reached the model
    root = tree_of(a).root_of(GQA)
    assert {c.id for c in leaves_of(a.library.store, root.id)} == {c.id for c in a.library.store.chunks_of(GQA, 0)}


def test_empty_and_runaway_replies_are_retried_then_capped(home, embedder):
    loop = "the heads share keys and values " * 30
    llm = Summariser(script=["", "A fine summary of grouped-query attention.", loop, loop])
    a = _assistant(home, embedder, llm)
    tree = TreeBuilder(a.library, llm, TreeConfig(summary_tokens=60, context_tokens=2048, reducer="pca", topics=False))

    kids = a.library.store.chunks_of(GQA, 0)[:3]
    text, note = tree._summarise(_Job(GQA, 1, "cluster", kids, "GQA"))
    assert text == "A fine summary of grouped-query attention." and "retried: empty reply" in note
    text, note = tree._summarise(_Job(GQA, 1, "cluster", kids, "GQA"))
    assert "capped" in note and len(text.split()) < len(loop.split()) and text.count("the heads share") <= 1
    # Two empty replies: a faithful extract instead of nothing.
    llm.script = ["", ""]
    text, note = tree._summarise(_Job(GQA, 1, "cluster", kids, "GQA"))
    assert "extractive fallback" in note and text.split()[0] in kids[0].text
    tree.close()


def test_a_paper_with_one_chunk(home, embedder):
    a = _assistant(home, embedder, Summariser())
    lib = a.library
    paper = Paper(arxiv_id="2401.00001", title="A Tiny Note", authors=("A. Author",), year=2024)
    leaf = Chunk(id=Chunk.make_id(paper.arxiv_id, 1, 1, 1, 0), arxiv_id=paper.arxiv_id, version=1, section="Abstract",
                 page_start=1, page_end=1, char_start=0, char_end=60, n_tokens=14,
                 text="We show that tiny notes can still be summarised. It has one chunk.")
    lib.store.upsert_paper(paper, PaperStatus.ok, "", 1)
    lib.store.replace_chunks(paper.arxiv_id, [leaf])
    lib.dense.add_embedded([leaf], embedder.embed([leaf.text]))
    report = build(a, papers=[paper.arxiv_id], topics=False)
    root = tree_of(a).root_of(paper.arxiv_id)
    assert report.papers_built == [paper.arxiv_id] and root.level == 1 and root.children == (leaf.id,)
    assert root.page_start == root.page_end == 1


def test_unknown_paper_and_no_llm(home, embedder):
    a = _assistant(home, embedder, Summariser())
    report = build(a, papers=["2401.99999"], topics=False)
    assert "ingest" in report.papers_failed["2401.99999"]
    with pytest.raises(LLMError):
        TreeBuilder(a.library, None, TreeConfig()).build()


def test_a_second_builder_is_refused(home, embedder):
    from indexes.raptor import BuildRunning, build_lock

    a = _assistant(home, embedder, Summariser())
    with build_lock(a.settings.index_dir):
        with pytest.raises(BuildRunning):
            with build_lock(a.settings.index_dir):
                pass


def test_cli_status(home, embedder):
    from typer.testing import CliRunner

    from assistant.cli.app import app

    a = _assistant(home, embedder, Summariser())
    build(a, papers=[GQA], topics=False)
    a.close()
    result = CliRunner().invoke(app, ["--home", str(home), "--offline", "raptor", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"with_tree"' in result.output and GQA in result.output
