"""Evaluation suite: datasets, metrics, an LLM judge, side-by-side runs and reports.

Public entry points:
- ``score_faithfulness(answer_text, passages, judge)``: RAGAS-style per-sentence verdicts + score,
  usable on any RAG system's answers;
- ``load_dataset(path)``: a JSONL gold set (../shared/eval/dev.jsonl format);
- ``evidence_hit`` / ``recall_at_k`` / ``reciprocal_rank``: retrieval helpers shared with bench/.
"""
from __future__ import annotations

from eval.datasets import DatasetError, QAItem, load_dataset
from eval.judge import Judge, JudgeVerdict
from eval.metrics import (CitationResult, FaithfulnessResult, SentenceVerdict, evidence_hit, recall_at_k,
                          reciprocal_rank, score_citations, score_faithfulness, token_f1)

__all__ = [
    "CitationResult", "DatasetError", "FaithfulnessResult", "Judge", "JudgeVerdict", "QAItem", "SentenceVerdict",
    "evidence_hit", "load_dataset", "recall_at_k", "reciprocal_rank", "score_citations", "score_faithfulness",
    "token_f1",
]
