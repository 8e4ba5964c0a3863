from foundation.text import markers_in, split_sentences
from foundation.types import Answer, Chunk, Citation, Hit, Paper


def hit(text: str, arxiv_id: str = "1706.03762", section: str = "3.2 Attention", pages=(4, 4)) -> Hit:
    c = Chunk(id=Chunk.make_id(arxiv_id, 1, pages[0], pages[1], len(text)), arxiv_id=arxiv_id, section=section,
              page_start=pages[0], page_end=pages[1], char_start=0, char_end=len(text), text=text)
    return Hit(chunk=c, score=0.8, paper=Paper(arxiv_id=arxiv_id, title="Attention Is All You Need",
                                                authors=("Ashish Vaswani", "Noam Shazeer"), year=2017))


PASSAGES = [
    hit("We suspect that for large values of dk, the dot products grow large in magnitude. "
        "This pushes the softmax function into regions where it has extremely small gradients."),
    hit("The Transformer uses multi-head attention in three different ways.", section="3.2.3"),
]


def test_markers_parsed_in_all_forms():
    assert markers_in("a [1] b [2, 3] c [4;5]") == [1, 2, 3, 4, 5]
    assert split_sentences("One. Two [1]. Three?") == ["One.", "Two [1].", "Three?"]
    # a real sentence of the Longformer paper: no cut after "et al." or "Fig."
    assert split_sentences("Following Sukhbaatar et al. (2019) we use differing window sizes across the layers "
                           "(Fig. 2). In particular, we use small window sizes for the lower layers.") == [
        "Following Sukhbaatar et al. (2019) we use differing window sizes across the layers (Fig. 2).",
        "In particular, we use small window sizes for the lower layers."]
    # an extractive answer cites after the closing quote: the marker closes its sentence (eval scored the
    # 1.5B run's extractive answers as uncited first sentences and misplaced citations before this)
    assert split_sentences("\u201cA2 writes to block 1.\u201d [1] \u201cThe outputs differ.\u201d [2, 3]") == [
        "\u201cA2 writes to block 1.\u201d [1]", "\u201cThe outputs differ.\u201d [2, 3]"]
    # a paper's sentence that opens with its citation still starts a sentence of its own
    assert split_sentences("See [12] for more. [4] showed it.") == ["See [12] for more.", "[4] showed it."]


def test_markdown_has_references_and_bibtex():
    c = PASSAGES[0].chunk
    cite = Citation(n=1, chunk_id=c.id, arxiv_id=c.arxiv_id, title="Attention Is All You Need", section=c.section,
                    page_start=4, page_end=4, quote=c.text, authors=("Ashish Vaswani", "Noam Shazeer"), year=2017)
    md = Answer(question="Why scale?", text="Large dot products push the softmax into small gradients [1].",
                citations=(cite,), passages=tuple(PASSAGES)).to_markdown()
    assert "### References" in md and "@misc{vaswani2017" in md and "author = {Ashish Vaswani and Noam Shazeer}" in md


def test_a_sentence_opening_with_a_lower_case_name_is_cut_from_the_one_before():
    """vLLM's own paper (2309.06180) opens sentences with "vLLM": each is a unit of its own, so a
    sentence of a draft or answer is checked and cited alone; abbreviations and initials still do not cut."""
    from foundation.text import sentence_spans
    from ingest.parse import parse_pdf
    from tests.conftest import PAPERS

    text = parse_pdf(PAPERS / "2309.06180.pdf", "2309.06180").text
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    opening = [s for s in sentences if s.startswith("vLLM ")]
    assert len(opening) >= 5
    assert not any(". vLLM " in s for s in sentences)
    assert split_sentences("It pages the KV cache [1]. vLLM supports beam search [2].") == \
        ["It pages the KV cache [1].", "vLLM supports beam search [2]."]
    assert len(split_sentences("See e.g. mBERT and Fig. 3 for details.")) == 1
