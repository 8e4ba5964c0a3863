"""Writers' API: cited drafts from the tree, fallback to passages, every sentence cited, references and BibTeX."""
from __future__ import annotations

import re
import shutil

import pytest

from assistant.api import Assistant
from foundation.text import split_sentences
from foundation.config import Settings
from assistant.summaries.draft import Draft, length_in_words
from tests.conftest import SMALL_IDS
from tests.test_raptor import Summariser

ROBERTA, GQA = SMALL_IDS


class Writer:
    """Scripted draft replies; records the prompt. Its support score agrees whenever it is asked, so these
    tests see the code's own checks (numbers, names, word coverage, alignment) decide."""

    model = "fake-writer"

    def __init__(self, reply: str, p_yes: float = 0.9):
        self.reply = reply
        self.p_yes = p_yes
        self.prompts: list[str] = []

    def yes_probability(self, messages) -> float:
        return self.p_yes

    def complete(self, messages, **kw):
        self.prompts.append(messages[-1]["content"])
        return self.reply


@pytest.fixture
def home(tmp_path, mini_library_home):
    dest = tmp_path / "home"
    shutil.copytree(mini_library_home.home, dest)
    return dest


def assistant(home, embedder, llm):
    return Assistant(Settings(home=home, offline=True, raptor_summary_tokens=60, raptor_context_tokens=2048),
                     embedder=embedder, llm=llm)


def every_sentence_cites(draft: Draft) -> bool:
    return all(re.search(r"\[\d+\]", s) for s in split_sentences(draft.text))


def test_draft_from_the_tree_cites_leaf_passages(home, embedder):
    a = assistant(home, embedder, Summariser())
    a.build_tree([GQA], reducer="pca", topics=False)
    reply = ("Grouped-query attention divides query heads into groups that share a single key head and value head [1]. "
             "Uptraining converts a multi-head checkpoint into a multi-query model with a small fraction of the "
             "original pre-training compute. "
             "The moon is made of green cheese.\n"
             "## A heading")
    writer = Writer(reply)
    a._llm = writer
    draft = a.summarize(papers=[GQA], length="short", style="summary")
    assert draft.tree_papers == (GQA,) and draft.leaf_papers == ()
    assert any(h.chunk.level > 0 for h in draft.sources)  # tree material, paper summary first
    assert draft.sources[0].chunk.section.startswith("Paper summary")
    # Paragraph by paragraph: the first asks for its share of the 120 words, not all of them.
    asked = int(re.search(r"about (\d+) words", writer.prompts[0]).group(1))
    assert 60 <= asked <= 110, writer.prompts[0]
    # The unsupported sentence is dropped; the bare one is aligned; every sentence cites.
    assert "The moon is made of green cheese." in draft.dropped, (draft.text, draft.dropped)
    assert len(split_sentences(draft.text)) == 2 and every_sentence_cites(draft), (draft.text, draft.dropped)
    assert "heading" not in draft.text
    # Citations point at leaf passages with paper, section and pages, numbered as in the text.
    assert [c.n for c in draft.citations] == list(range(1, len(draft.citations) + 1))
    leaves = {c.id: c for c in a.library.store.chunks_of(GQA, 0)}
    for c in draft.citations:
        assert c.chunk_id in leaves and c.arxiv_id == GQA and c.page_start >= 1 and c.section and c.quote
        assert f"[{c.n}]" in draft.text
    md = draft.to_markdown()
    assert "## References" in md and "@misc{ainslie2023_230513245" in md and ("pp." in md or "p. " in md)
    assert draft.references[0].startswith("[1] GQA")


def test_without_a_tree_it_falls_back_to_passages(home, embedder):
    writer = Writer("RoBERTa trains BERT longer, with bigger batches over more data [1]. "
                    "It removes the next sentence prediction objective [2].")
    a = assistant(home, embedder, writer)
    draft = a.summarize(papers=[ROBERTA, GQA], length=80)
    assert draft.tree_papers == () and set(draft.leaf_papers) == {ROBERTA, GQA}
    assert all(h.chunk.level == 0 for h in draft.sources)
    assert {h.chunk.arxiv_id for h in draft.sources} == {ROBERTA, GQA}
    assert every_sentence_cites(draft) and draft.citations
    assert draft.bibtex.count("@misc") == len({c.arxiv_id for c in draft.citations})


def test_topic_draft_and_extractive_fallback(home, embedder):
    a = assistant(home, embedder, Writer("I cannot help with that."))
    draft = a.summarize(topic="sharing key and value heads across attention heads", style="related-work")
    assert draft.extractive and draft.citations and every_sentence_cites(draft)
    assert draft.sources[0].chunk.arxiv_id == GQA


def test_bad_requests(home, embedder):
    a = assistant(home, embedder, Writer("x"))
    with pytest.raises(ValueError):
        a.summarize()
    with pytest.raises(ValueError):
        a.summarize(papers=[GQA], topic="both")
    with pytest.raises(ValueError, match="not in the library"):
        a.summarize(papers=["2401.99999"])
    with pytest.raises(ValueError):
        length_in_words("enormous")
    assert length_in_words(10_000) == 1500 and length_in_words("long") == 450


def test_an_answer_citing_a_summary_cites_a_leaf_page(home, embedder):
    from tests.fakes import ScriptedLLM

    a = assistant(home, embedder, Summariser())
    a.build_tree([GQA], reducer="pca", topics=False)
    hits = a.search("grouped-query attention key and value heads", 8, mode="collapsed:1")
    assert hits and all(h.chunk.level == 1 for h in hits)
    a._llm = ScriptedLLM(["Grouped-query attention shares one key and value head among a group of query heads [1]."])
    answer = a.ask("How does grouped-query attention share key and value heads?", mode="collapsed:1")
    assert not answer.abstained and answer.citations, answer.text
    cited = a.library.store.chunks([c.chunk_id for c in answer.citations])
    assert all(ch.level == 0 and ch.arxiv_id == GQA for ch in cited.values())
    assert all(c.page_start >= 1 and c.quote in cited[c.chunk_id].text for c in answer.citations)


def test_restated_sentences_and_prompt_labels_are_dropped(home, embedder):
    a = assistant(home, embedder, Summariser())
    sentence = "Grouped-query attention divides query heads into groups that share a single key head and value head"
    writer = Writer(f"{sentence} [1]. Numbers: {sentence} [1]. {sentence.replace('divides', 'splits')} [1].")
    a._llm = writer
    draft = a.summarize(papers=[GQA], length="short", style="summary")
    assert len(split_sentences(draft.text)) == 1, draft.text
    assert not draft.text.startswith("Numbers:")


def test_a_sentence_the_checker_rejects_never_reaches_the_draft(home, embedder):
    """Words all in the passage but the support score says no: dropped; the draft falls back to the papers'
    own prose, verbatim and cited (no title line, author list or cut-off fragment)."""
    sentence = "Grouped-query attention divides query heads into groups that share a single key head and value head"
    a = assistant(home, embedder, Writer(f"{sentence} [1].", p_yes=0.05))
    draft = a.summarize(papers=[GQA], length="short", style="summary")
    assert sentence not in draft.text and any(sentence in d for d in draft.dropped), draft.dropped
    assert draft.extractive and draft.citations and every_sentence_cites(draft)
    for s in split_sentences(draft.text):
        assert "∗" not in s and "Google Research" not in s and s[0].isupper(), s


def test_a_sentence_cut_off_by_the_token_limit_is_dropped(home, embedder):
    sentence = "Grouped-query attention divides query heads into groups that share a single key head and value head"
    a = assistant(home, embedder, Writer(f"{sentence} [1]. It also enables memory sharing across the"))
    draft = a.summarize(papers=[GQA], length="short", style="summary")
    assert "across the" not in draft.text and any("across the" in d for d in draft.dropped), draft.dropped
