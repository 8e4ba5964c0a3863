"""The quotes style's way out ("[0]"), the check of what the question asks for, the direct answer above the
quotes, and markers numbered in the order shown: real small index, real retrieval and evidence selection, a
scripted model (tests/test_ask_llm.py runs the same path through the real local model)."""
from __future__ import annotations

import re

import pytest

from assistant.api import Assistant
from assistant.engine.asks import asks_for, unanswered
from assistant.engine.evidence import EvidenceSelector
from assistant.engine.route import about_one_paper, paper_meant
from assistant.engine.single_shot import SingleShot
from assistant.engine.write import quotable_sentences
from foundation.text import names_in, numbers_in
from tests.test_answer import GatedLLM, answerer_for

QUESTION = "How does grouped-query attention relate to multi-head and multi-query attention?"
GQA, ROBERTA = "2305.13245", "1907.11692"


@pytest.fixture
def setup(mini_library_home, embedder):
    a = Assistant(mini_library_home, embedder=embedder)
    selector = EvidenceSelector(embedder.embed_tokens, a.library.extra_indexes["bm25"].idf)
    return a, selector


def ask(setup, llm, question=QUESTION, **settings):
    a, selector = setup
    s = a.settings.model_copy(update={"answer_style": "quotes", **settings})
    retrieval = a.retriever.retrieve(question, "hybrid", 8)
    quotes = selector.select(question, list(retrieval.hits), s.quotes_budget_tokens)
    answerer = answerer_for(a, llm, s, selector)
    events = list(answerer.stream(question, retrieval))
    answerer.close()
    return events, events[-1].answer, quotes


def gqa_quote(quotes):
    return next(q for q in quotes if "grouped-query" in q.text.lower() and "multi-query" in q.text.lower())


def test_zero_is_the_way_out_and_the_decline_shows_related_quotes(setup):
    events, answer, quotes = ask(setup, GatedLLM(["[0]"]))
    assert answer.abstained and "do not answer" in answer.text and "Related, does not answer" in answer.text
    assert answer.abstain_reason == "the model found no quote that answers"
    assert answer.citations and [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert not [e for e in events if e.kind == "token"]  # nothing was shown as an answer


def test_a_number_question_whose_picked_quote_holds_no_number_is_declined_saying_what_is_missing(setup):
    question = "How many parameters does grouped-query attention's GQA-XXL model have in total?"
    _, _, quotes = ask(setup, GatedLLM(["[0]"]), question)
    wordy = next(q for q in quotes if not re.search(r"\d", q.text))
    _, answer, _ = ask(setup, GatedLLM([f"[{wordy.n}]"]), question)
    assert answer.abstained and "parameter count" in answer.text and "Related, does not answer" in answer.text
    assert "no parameter count" in answer.abstain_reason


def test_a_checked_direct_answer_goes_above_the_quotes_and_markers_start_at_one(setup):
    _, _, quotes = ask(setup, GatedLLM(["[0]"]))
    q = gqa_quote(quotes)
    other = next(x for x in quotes if x.n != q.n)
    direct = "Grouped-query attention interpolates between multi-head and multi-query attention."
    _, answer, _ = ask(setup, GatedLLM([f"[{q.n}][{other.n}]\n{direct}"], support=0.9))
    assert answer.direct_answer.startswith("Grouped-query attention interpolates") and "[1]" in answer.direct_answer
    assert answer.text.startswith(answer.direct_answer) and answer.text.index("[1]") < answer.text.index("[2]")
    assert [c.chunk_id for c in answer.citations][:2] == [q.chunk_id, other.chunk_id]
    assert answer.quotes[0].n == 1 and answer.quotes[0].chunk_id == q.chunk_id
    assert answer.verdicts[0].note.startswith("direct answer") and answer.verdicts[0].supported


def test_an_unsupported_direct_answer_is_dropped_and_recorded(setup):
    _, _, quotes = ask(setup, GatedLLM(["[0]"]))
    q = gqa_quote(quotes)
    invented = "Grouped-query attention uses 37 groups of key-value heads in every model."
    _, answer, _ = ask(setup, GatedLLM([f"[{q.n}]\n{invented}"]))
    assert not answer.abstained and not answer.direct_answer and "37 groups" not in answer.text
    assert answer.verdicts[0].supported is False and "numbers" in answer.verdicts[0].note
    assert answer.text.startswith("\u201c")


def test_a_direct_answer_from_a_quote_the_model_read_but_did_not_pick_is_shown_with_that_quote(setup):
    """The small model picks three quotes and then answers from a fourth: the direct answer is checked against
    the quote that holds its names, which is shown in place of the last pick it does not rest on."""
    _, _, quotes = ask(setup, GatedLLM(["[0]"]))

    def lacks(sentence, quote):  # a name or number of the sentence is not in the quote (nor its title, the question)
        given = f"{quote.text} {quote.title} {QUESTION}".lower()
        return not all(t in given for t in names_in(sentence) | numbers_in(sentence))

    source, direct = next((q, x) for q in quotes for x in quotable_sentences(q.text)
                          if len(x.split()) <= 40 and sum(lacks(x, o) for o in quotes if o.n != q.n) >= 3)
    others = [o for o in quotes if o.n != source.n and lacks(direct, o)][:3]
    picks = "".join(f"[{o.n}]" for o in others)
    _, answer, _ = ask(setup, GatedLLM([f"{picks}\n{direct}"], support=0.9))
    assert answer.direct_answer.startswith(direct[:-1]), answer.verdicts[0]
    assert answer.citations[0].chunk_id == source.chunk_id and "[1]" in answer.direct_answer
    assert len(set(re.findall(r"\[(\d+)\]", answer.text))) <= 3
    assert quotable_sentences(others[2].text)[0] not in answer.text  # the last pick made room for the source


def test_what_a_question_asks_for():
    assert asks_for("How many GPU-hours did training take?").units == ("gpu-hour", "gpu", "hour")
    assert asks_for("Which library is used for nearest-neighbour search?").name
    assert not asks_for("Why does the Transformer scale dot products?").number
    assert unanswered("How many tokens was Mistral 7B trained on?", "Mistral 7B outperforms Llama 2 13B.")
    assert unanswered("How many tokens was Mistral 7B trained on?", "Mistral 7B was trained on 2T tokens.") == ""
    assert unanswered("How many templates per dataset were written?", "We write ten unique templates.") == ""
    # the number must be said of what the question names (or come from that thing's own paper)
    assert unanswered("How many days did pre-training PaLM 540B take?", "For each of 4 days, 5 more computers were added.")
    assert unanswered("How many days did pre-training PaLM 540B take?", "We trained PaLM 540B for 50 days.") == ""
    assert unanswered("How long did it take to train GPT-NeoX-20B?", "We trained it for 30 days.",
                      ["GPT-NeoX-20B: An Open-Source Autoregressive Language Model"]) == ""
    assert unanswered("How long did it take to train GPT-NeoX-20B?", "It has 20 billion parameters.",
                      ["GPT-NeoX-20B: An Open-Source Autoregressive Language Model"])


def test_a_question_about_the_paper_is_routed_to_the_paper_it_means(setup):
    a, _ = setup
    question = "How do the authors turn an existing multi-head checkpoint into one with fewer key-value heads?"
    assert about_one_paper(question) and not about_one_paper(QUESTION)
    hits = a.retriever.retrieve(question, "hybrid", 8).hits
    assert paper_meant(question, hits) == GQA
    llm = GatedLLM(["[1]"])
    events = list(SingleShot(a.retriever, lambda: llm, a.settings).stream(question))
    answer = events[-1].answer
    assert answer.settings["routed_to"] == GQA and {h.chunk.arxiv_id for h in answer.passages} == {GQA}
    assert not answer.abstained
