"""Tables read from real corpus PDFs into rows that can be quoted alone, indexed and searched as passages."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexes.integrity import chunk_digest
from indexes.store import SELECT_CHUNK, chunk_from_row

from assistant.engine.evidence import candidates
from foundation.types import PASSAGES_VERSION, Chunk, Hit, ParsedPaper, PaperStatus, Section
from ingest.parse import parse_pdf
from ingest.tables import find_tables
from tests.conftest import PAPERS, SMALL_IDS, make_mirror

BERT, ROBERTA, LLAMA, LORA = "1810.04805", "1907.11692", "2302.13971", "2106.09685"
GQA = SMALL_IDS[1]


@pytest.fixture(scope="module")
def parsed() -> dict[str, ParsedPaper]:
    return {i: parse_pdf(PAPERS / f"{i}.pdf", i) for i in (BERT, ROBERTA, LLAMA, LORA)}


def table(paper: ParsedPaper, number: str):
    return next(t for t in find_tables(paper) if t.number == number)


def row(paper: ParsedPaper, number: str, label: str):
    return next(r for r in table(paper, number).rows if r.label == label)


def test_rows_hold_their_numbers_under_their_headers(parsed):
    bert = parsed[BERT]
    embeddings = row(bert, "7", "First Layer (Embeddings)")
    assert embeddings.cells == (("Dev F1", "91.0"),)
    assert embeddings.text == ("Table 7 (Ablation using BERT with a feature-based approach on CoNLL-2003 NER): "
                               "First Layer (Embeddings): Dev F1 91.0.")
    assert row(bert, "3", "BERTLARGE").cells == (("Dev F1", "96.6"), ("Test F1", "92.8"))
    # "System Dev Test" over "EM F1 EM F1": each value under its split and metric; "-" cells say nothing.
    assert row(bert, "2", "BERTBASE (Single) (Ours)").cells[:2] == (("Dev EM", "80.8"), ("Dev F1", "88.5"))
    assert "Test" not in row(bert, "2", "BERTBASE (Single) (Ours)").text.split(": ", 2)[2]
    # "SQuAD 1.1 SQuAD 2.0 EM F1 EM F1" on one line, and a group line ("Single models on dev, ...") over the rows.
    squad = row(parsed[ROBERTA], "6", "RoBERTa (Single models on dev, w/o data augmentation)")
    assert dict(squad.cells) == {"SQuAD 1.1 EM": "88.9", "SQuAD 1.1 F1": "94.6", "SQuAD 2.0 EM": "86.5",
                                 "SQuAD 2.0 F1": "89.4"}
    # "LLaMA" over "65B ...": the group names the row; the model size stays out of the values.
    nq = row(parsed[LLAMA], "4", "LLaMA 65B")
    assert dict(nq.cells) == {"0-shot": "23.8", "1-shot": "31.0", "5-shot": "35.0", "64-shot": "39.9"}
    assert table(parsed[LLAMA], "4").page == 4 and table(parsed[BERT], "7").page == 12


def test_rows_are_in_the_paper_where_the_table_is(parsed):
    for paper in parsed.values():
        for t in find_tables(paper):
            for r in t.rows:
                line = paper.text[r.start:r.end]
                assert paper.page_at(r.start) == t.page
                assert all(v in line for _, v in r.cells if v not in "-–—")  # every value is the PDF's own


def test_headers_that_do_not_line_up_say_less_not_something_wrong(parsed):
    # "Humanities STEM Social Sciences Other Average": five values, six words; "Social Sciences" is one name.
    mmlu = row(parsed[LLAMA], "9", "GPT-3 175B")
    assert all(h == "" for h, _ in mmlu.cells) and [v for _, v in mmlu.cells] == ["40.8", "36.7", "50.4", "48.8", "43.9"]
    assert "[columns: Humanities STEM Social Sciences Other Average]" in mmlu.text and "STEM 40.8" not in mmlu.text
    # Two rows run together on one line ("WikiSQL(±0.5%) Wq 68.8 ... Wq,Wv 73.4 ...") give no row.
    for t in find_tables(parsed[LORA]):
        for r in t.rows:
            assert not any(tok.replace(".", "", 1).isdigit() and "." in tok for tok in r.label.split()), r.text


def test_a_page_without_tables_gives_none(parsed):
    bert = parsed[BERT]
    first = bert.text[: bert.page_offsets[1]]  # title, abstract, introduction; "Table 6. In this table" is prose
    page = ParsedPaper(arxiv_id=BERT, text=first, page_offsets=(0,), sections=(Section(title="Abstract", page_start=1,
                                                                                          char_start=0),))
    assert find_tables(page) == []
    assert all(t.number != "6" or t.rows[0].label.startswith("#L") or "#L" in t.rows[0].text
               for t in find_tables(bert))  # the caption, not the sentence "Table 6. In this table, ..."


def test_odd_regions_give_no_garbage_rows():
    text = "\n".join([
        "We trained for 3 epochs with a batch size of 32 and a learning rate of 1e-4 on 8 GPUs.",
        "Table 2: Results.",                                 # a caption with prose, not rows, around it
        "The model reaches 91.2 on the dev set and 90.7 on test, see above.",
        "Model Score",
        "Ours",                                              # one row is not a table
        "Baseline 71.3",
        "Table 3: Numbers in running text.",
        "as reported by 4 of the 5 annotators in 2019 and 2020",
        "Table 4: Lines of figures.",
        "0.1 0.2 0.3",                                       # numbers with no name and no header
        "0.4 0.5 0.6",
    ])
    paper = ParsedPaper(arxiv_id="2401.00001", text=text, page_offsets=(0,), sections=())
    assert find_tables(paper) == []


def test_table_rows_are_quotable_one_candidate_a_row(parsed):
    t = table(parsed[BERT], "7")
    text = "\n".join(r.text for r in t.rows)
    chunk = Chunk(id="x", arxiv_id=BERT, section=t.name, page_start=t.page, page_end=t.page, char_start=0,
                  char_end=1, text=text, kind="table")
    cands = candidates([Hit(chunk=chunk, score=1.0)])
    assert [c.text for c in cands] == [r.text for r in t.rows]
    assert all(text[c.start:c.end] == c.text for c in cands)
    # The same lines in a prose passage are not quotable: table cells read as no sentence.
    prose = chunk.model_copy(update={"kind": "text", "text": "\n".join(parsed[BERT].text[r.start:r.end] for r in t.rows)})
    assert candidates([Hit(chunk=prose, score=1.0)]) == []


@pytest.mark.model
def test_table_rows_are_indexed_searched_and_cited(settings_for, tmp_path, embedder):
    from assistant.api import Assistant

    a = Assistant(settings_for(make_mirror(tmp_path / "mirror", [GQA])), embedder=embedder)
    assert a.ingest([GQA])[0].status == PaperStatus.ok
    store = a.library.store
    tables = [c for c in store.chunks_of(GQA) if c.kind == "table"]
    assert {c.section for c in tables} == {"Table 1"} and {c.page_start for c in tables} == {3}
    mqa = next(c for c in tables if "MQA-XXL: Tinfer 0.24" in c.text)  # four long rows: two passages
    assert a.library.dense.count() == store.count_chunks()  # the rows are embedded like any passage
    assert set(a.library.extra_indexes["bm25"].chunk_ids()) == {c.id for c in store.chunks_of(GQA)}
    hits = a.search("What is the inference time of the multi-query T5-XXL model?", k=3)
    assert mqa.id in [h.chunk.id for h in hits]
    assert store.paper(GQA).passages == PASSAGES_VERSION
    a.close()


@pytest.mark.model
def test_a_library_indexed_before_tables_is_reindexed_cleanly(settings_for, tmp_path, embedder):
    """Passages made by older code are replaced, never mixed: every index forgets them and embeds the new ones."""
    from assistant.api import Assistant

    settings = settings_for(make_mirror(tmp_path / "mirror", [GQA]))
    a = Assistant(settings, embedder=embedder)
    a.ingest([GQA])
    ids = {c.id for c in a.library.store.chunks_of(GQA)}
    a.close()
    # What an index from before tables looks like: no table chunks, text stored under the old passages version.
    db = sqlite3.connect(str(Path(settings.index_dir) / "library.sqlite"))
    table_ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE kind='table'")]
    db.execute("DELETE FROM chunks WHERE kind='table'")
    db.execute("UPDATE chunks SET text = text || ' (old)' WHERE kind='text'")
    db.execute("UPDATE papers SET passages=1, n_chunks=(SELECT COUNT(*) FROM chunks)")
    # Rows an older version wrote carry checksums of what they say (given at migration): not tampered ones.
    db.executemany("UPDATE chunks SET digest=? WHERE id=?",
                   [(chunk_digest(chunk_from_row(r)), r[0]) for r in db.execute(SELECT_CHUNK).fetchall()])
    db.commit()
    db.close()
    b = Assistant(settings, embedder=embedder)
    b.library.drop_from_indexes(table_ids)
    stale = b.library.store.chunks_of(GQA)[3]  # its vector in the dense index, too, is the old code's
    b.library.dense.add_embedded([stale], np.ones((1, 384), dtype=np.float32) / np.sqrt(384))
    assert any("older version" in w for w in b.library.warnings())
    result = b.ingest([GQA])[0]
    assert result.status == PaperStatus.ok and not result.skipped
    store = b.library.store
    assert {c.id for c in store.chunks_of(GQA)} == ids and store.paper(GQA).passages == PASSAGES_VERSION
    assert not any(c.text.endswith("(old)") for c in store.chunks_of(GQA))
    assert b.library.dense.count() == len(ids) and not any("older version" in w for w in b.library.warnings())
    fresh = store.chunks([stale.id])[stale.id]
    assert float(b.library.dense.vectors([stale.id])[stale.id] @ embedder.embed([fresh.text])[0]) > 0.99
    hits = b.search("grouped-query attention interpolates between multi-head and multi-query", k=5, mode="bm25")
    assert hits and not any(h.chunk.text.endswith("(old)") for h in hits)
    b.close()
