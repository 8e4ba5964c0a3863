"""Answers over a library that mixes an arXiv paper (from the mirror) and a PDF from the user's BibTeX library,
with the real local model: each kind cited right, with its PDF and page; the draft's BibTeX keeps the key."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from foundation.types import is_local_id
from tests.conftest import SMALL_MODEL, make_mirror
from tests.own_papers import copy_paper

ROBERTA, GQA = "1907.11692", "2305.13245"


@pytest.mark.llm
@pytest.mark.model
def test_ask_over_arxiv_and_local_papers_cites_each_with_its_pdf(settings_for, tmp_path, embedder, vllm_url):
    from assistant.api import Assistant
    from assistant.cli.render import print_answer
    from assistant.llm.client import OpenAICompatibleLLM

    pdf = copy_paper(GQA, tmp_path / "library" / "files" / "gqa.pdf")
    bib = tmp_path / "library" / "refs.bib"
    bib.write_text("@inproceedings{ainslie2023gqa,\n  title = {{GQA}: Training Generalized Multi-Query Transformer "
                   "Models from Multi-Head Checkpoints},\n  author = {Ainslie, Joshua and Lee-Thorp, James},\n"
                   "  booktitle = {Proceedings of EMNLP},\n  year = {2023},\n  file = {files/gqa.pdf}\n}\n")
    settings = settings_for(make_mirror(tmp_path / "mirror", [ROBERTA]), llm_base_url=vllm_url,
                            llm_model=SMALL_MODEL)
    a = Assistant(settings, embedder=embedder, llm=OpenAICompatibleLLM(vllm_url, SMALL_MODEL, timeout_s=120.0))
    results = a.ingest([ROBERTA, str(bib)])
    assert all(r.status.value == "ok" for r in results if r.kind == "paper") and len(results) == 2
    local_id = next(r.arxiv_id for r in results if is_local_id(r.arxiv_id))

    answer = a.ask("How are multi-head checkpoints uptrained into multi-query or grouped-query attention models?")
    assert answer.citations and not answer.abstained, answer.text
    assert {c.arxiv_id for c in answer.citations} == {local_id}
    for c in answer.citations:
        assert c.pdf_path == str(pdf) and c.citation_key == "ainslie2023gqa" and 1 <= c.page_start <= 7
    assert "@article{ainslie2023gqa," in answer.to_markdown() and "journal = {Proceedings of EMNLP}" in \
        answer.to_markdown()
    shown = io.StringIO()
    print_answer(Console(file=shown, width=200), answer)
    assert f"{pdf}, page {answer.citations[0].page_start}" in shown.getvalue()

    answer = a.ask("What did RoBERTa find about removing the next sentence prediction loss?")
    assert answer.citations and not answer.abstained, answer.text
    assert {c.arxiv_id for c in answer.citations} == {ROBERTA}
    assert all(c.pdf_path == str(settings.mirror / f"{ROBERTA}.pdf") and c.citation_key == ""
               for c in answer.citations)

    a.close()


@pytest.mark.llm
@pytest.mark.model
def test_summarize_a_library_paper_keeps_its_citation_key(settings_for, tmp_path, embedder, vllm_url):
    from assistant.api import Assistant
    from assistant.llm.client import OpenAICompatibleLLM

    pdf = copy_paper(GQA, tmp_path / "files" / "gqa.pdf")
    bib = tmp_path / "refs.bib"
    bib.write_text(f"@misc{{ainslie2023gqa,\n  title = {{GQA}},\n  author = {{Ainslie, Joshua}},\n  file = {{{pdf}}}\n}}\n")
    a = Assistant(settings_for(llm_base_url=vllm_url, llm_model=SMALL_MODEL), embedder=embedder,
                  llm=OpenAICompatibleLLM(vllm_url, SMALL_MODEL, timeout_s=300.0))  # a shared server can be slow
    [result] = a.ingest([str(bib)])
    draft = a.summarize(papers=[result.arxiv_id], length="short")
    assert draft.citations and draft.bibtex.startswith("@misc{ainslie2023gqa,")
    assert all(c.pdf_path == str(pdf) and c.citation_key == "ainslie2023gqa" for c in draft.citations)
    a.close()
