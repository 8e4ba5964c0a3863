"""Which secondary indexes (beside dense) the library keeps in sync, built from settings."""
from __future__ import annotations

from assistant.config import Settings
from indexes.base import Index


def build_extra_indexes(settings: Settings) -> dict[str, Index]:
    """Index objects are cheap: each loads its files (and ColBERT its model) on first use."""
    made: dict[str, Index] = {}
    for name in dict.fromkeys(settings.indexes):
        if name == "bm25":
            from indexes.bm25 import BM25Index

            made[name] = BM25Index(settings.index_dir / "bm25")
        elif name == "colbert":
            from indexes.colbert import ColBERTIndex

            made[name] = ColBERTIndex(settings.index_dir / "colbert", checkpoint=settings.colbert_checkpoint,
                                      cache_dir=settings.cache_dir / "colbert")
    return made
