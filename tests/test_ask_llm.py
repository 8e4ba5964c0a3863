"""Ask real questions of real papers through the real local vLLM server (0.5B model)."""
import pytest

from assistant.api import Assistant
from tests.conftest import SMALL_IDS

ROBERTA, GQA = SMALL_IDS
pytestmark = pytest.mark.llm


def test_answer_cites_the_right_paper_with_section_and_page(mini_library_home, embedder, llm):
    a = Assistant(mini_library_home, embedder=embedder, llm=llm)
    answer = a.ask("How does grouped-query attention relate to multi-head and multi-query attention?")
    assert not answer.abstained, answer.text
    assert answer.citations, answer.text
    assert {c.arxiv_id for c in answer.citations} == {GQA}
    for c in answer.citations:
        assert c.page_start >= 1 and c.quote
        assert c.chunk_id in {h.chunk.id for h in answer.passages}
    assert answer.model == llm.model and answer.timings["first_token_s"] > 0
    markdown = answer.to_markdown()
    for c in answer.citations:  # every citation is a marker in the text and a reference in the Markdown
        assert f"[{c.n}]" in answer.text and c.label in markdown


def test_streaming_yields_tokens_then_the_answer(mini_library_home, embedder, llm):
    a = Assistant(mini_library_home, embedder=embedder, llm=llm)
    events = list(a.ask_stream("What masking strategy does RoBERTa use instead of static masking?"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "search" and kinds[-1] == "answer" and kinds.count("token") > 3
    final = events[-1].answer
    assert final.citations and all(c.arxiv_id == ROBERTA for c in final.citations)


def test_question_the_papers_do_not_cover_is_declined(mini_library_home, embedder, llm):
    a = Assistant(mini_library_home, embedder=embedder, llm=llm)
    answer = a.ask("What is the boiling point of liquid nitrogen at sea level?")
    assert answer.abstained and not answer.citations
    assert "do not answer" in answer.text
