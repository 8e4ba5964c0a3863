"""Late-interaction retrieval (ColBERT on colbert-ai's PLAID index): index.py holds the Index, plaid.py the
colbert-ai internals it drives, checkpoint.py the offline MiniLM checkpoint."""
from indexes.colbert.index import ColBERTIndex

__all__ = ["ColBERTIndex"]
