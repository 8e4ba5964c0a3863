"""Indexes over chunks: the SQLite store, dense (chromadb), ColBERT, BM25, RAPTOR."""
