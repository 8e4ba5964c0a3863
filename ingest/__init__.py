"""Ingestion: reading lists -> fetched PDFs -> parsed text -> token-bounded chunks."""
