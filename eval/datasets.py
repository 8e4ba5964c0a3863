"""Gold QA sets as JSONL: one question per line, validated, with the line number on any error.

Format (../shared/eval/README.md): ``question``, optional ``answer``, ``arxiv_id``, ``evidence``
(verbatim strings), ``pages``, ``kind`` (``unanswerable`` has no answer). ``id`` is optional: a
missing one becomes ``line<N>``. Unknown fields are kept in ``extra`` so user datasets load too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

UNANSWERABLE = "unanswerable"


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and line."""


class QAItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    question: str = Field(min_length=1)
    answer: str | None = None
    arxiv_id: str | None = None
    evidence: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    kind: str = "fact"
    why_unanswerable: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return self.kind != UNANSWERABLE

    @model_validator(mode="after")
    def _check(self) -> "QAItem":
        if not self.question.strip():
            raise ValueError("empty question")
        if self.kind == UNANSWERABLE:
            if self.answer:
                raise ValueError("an unanswerable question must have no answer")
        elif self.pages and len(self.pages) != len(self.evidence):
            raise ValueError(f"pages has {len(self.pages)} entries but evidence has {len(self.evidence)}")
        if any(not e.strip() for e in self.evidence):
            raise ValueError("empty evidence string")
        return self


KNOWN = set(QAItem.model_fields) - {"extra"}


def parse_item(obj: Any, line_no: int) -> QAItem:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    fields = {k: v for k, v in obj.items() if k in KNOWN}
    fields.setdefault("id", f"line{line_no}")
    fields["id"] = str(fields["id"])
    if isinstance(fields.get("evidence"), str):
        fields["evidence"] = [fields["evidence"]]
    if fields.get("answer") is None and fields.get("kind") is None:
        fields["kind"] = UNANSWERABLE
    fields["extra"] = {k: v for k, v in obj.items() if k not in KNOWN}
    return QAItem(**fields)


def iter_jsonl(path: Path):
    """(line number, parsed object) for each non-blank line; DatasetError names the bad line."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def load_dataset(path: Path | str, limit: int | None = None, ids: Sequence[str] | None = None) -> list[QAItem]:
    """Validated items in file order; duplicate ids and malformed lines are errors with the line number."""
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for line_no, obj in iter_jsonl(Path(path)):
        try:
            item = parse_item(obj, line_no)
        except (ValidationError, ValueError) as exc:
            raise DatasetError(f"{path}:{line_no}: {_short(exc)}") from None
        if item.id in seen:
            raise DatasetError(f"{path}:{line_no}: duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = line_no
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: no questions")
    if ids:
        wanted = set(ids)
        items = [i for i in items if i.id in wanted]
    return items[:limit] if limit else items


class ScoringRecord(BaseModel):
    """One answer from any RAG system to score: the question, its answer and the passages it used."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    question: str = ""
    answer: str
    passages: tuple[str, ...]


def load_scoring_records(path: Path | str) -> list[ScoringRecord]:
    """JSONL of {question, answer, passages: [str | {text: str}]} for the standalone faithfulness scorer."""
    records = []
    for line_no, obj in iter_jsonl(Path(path)):
        try:
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            passages = obj.get("passages", obj.get("contexts"))
            if not isinstance(passages, list):
                raise ValueError("'passages' must be a list of strings or {text: ...} objects")
            texts = [p["text"] if isinstance(p, dict) else p for p in passages]
            records.append(ScoringRecord(id=str(obj.get("id", f"line{line_no}")), question=obj.get("question", ""),
                                         answer=obj["answer"], passages=tuple(texts)))
        except KeyError as exc:
            raise DatasetError(f"{path}:{line_no}: missing field {exc}") from None
        except (ValidationError, ValueError, TypeError) as exc:
            raise DatasetError(f"{path}:{line_no}: {_short(exc)}") from None
    return records


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())
    return str(exc)
