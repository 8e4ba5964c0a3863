"""The naive baseline: what a user would build with llama-index in ten lines, over the SAME chunks.

VectorStoreIndex over the library's chunks (the stored vectors of the same embedder, so nothing is
re-embedded; new text goes through our embedder wrapped as a llama-index BaseEmbedding), the same
LLM through llama-index's OpenAILike pointed at the same OpenAI-compatible server, and the default
query engine (retrieve top-k, then the default "compact" response synthesizer and its default QA
prompt). Only top-k is set: to the project's ``top_k`` so both pipelines read as many passages
(llama-index's own default is 2). llm and embed_model are always passed explicitly: llama-index's
global Settings (which default to OpenAI) are never read or set.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from foundation.config import Settings
from eval.datasets import QAItem
from eval.pipelines import PassageRecord, PipelineOutput


def wrap_embedder(embedder):
    """Our Embedder as a llama-index BaseEmbedding (same model, same normalisation)."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class ProjectEmbedding(BaseEmbedding):
        _inner: Any = PrivateAttr()

        def __init__(self, inner, **kwargs):
            super().__init__(model_name=getattr(inner, "name", "project-embedder"), **kwargs)
            self._inner = inner

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._inner.embed([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._inner.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._inner.embed(texts).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return ProjectEmbedding(embedder)


def make_openai_like(settings: Settings, base_url: str | None = None):
    """llama-index's OpenAILike on the same server and model as the project's answers."""
    from llama_index.llms.openai_like import OpenAILike

    url = base_url or settings.llm_base_url
    if not url:
        raise RuntimeError("the baseline needs an OpenAI-compatible llm_base_url (--llm-url); "
                           "it never falls back to OpenAI")
    return OpenAILike(model=settings.llm_model, api_base=url, api_key=settings.llm_api_key, is_chat_model=True,
                      context_window=settings.vllm_max_model_len, max_tokens=settings.llm_max_tokens,
                      temperature=settings.llm_temperature, timeout=settings.llm_timeout_s, max_retries=1)


def library_nodes(settings: Settings, embedder) -> list:
    """TextNodes of every leaf chunk in the library, each with its stored dense vector."""
    from llama_index.core.schema import TextNode

    from assistant.api import Assistant

    assistant = Assistant(settings, embedder=embedder)
    try:
        library = assistant.library
        papers = library.paper_map()
        chunks = list(library.store.iter_chunks(level=0))
        vectors = stored_vectors(settings, [c.id for c in chunks])
    finally:
        assistant.close()
    nodes = []
    for c in chunks:
        paper = papers.get(c.arxiv_id)
        nodes.append(TextNode(id_=c.id, text=c.text, embedding=vectors.get(c.id),
                              metadata={"arxiv_id": c.arxiv_id, "title": paper.title if paper else "",
                                        "page": c.pages_label}))
    return nodes


def stored_vectors(settings: Settings, ids: Sequence[str], batch: int = 2000) -> dict[str, list[float]]:
    from indexes.dense import open_chroma

    client = open_chroma(None if settings.chroma_url else settings.index_dir / "chroma", settings.chroma_url)
    col = client.get_collection(settings.collection, embedding_function=None)
    out: dict[str, list[float]] = {}
    ids = list(ids)
    for i in range(0, len(ids), batch):
        got = col.get(ids=ids[i:i + batch], include=["embeddings"])
        out.update({cid: list(map(float, vec)) for cid, vec in zip(got["ids"], got["embeddings"])})
    return out


class BaselinePipeline:
    def __init__(self, name: str, settings: Settings, embedder, llm=None):
        self.name = name
        self.settings = settings
        self.embedder = embedder
        self._llm = llm
        self._engine = None

    def _ready(self):
        if self._engine is None:
            from llama_index.core import VectorStoreIndex

            embed_model = wrap_embedder(self.embedder)
            llm = self._llm or make_openai_like(self.settings)
            # Chunks without a stored vector are embedded by our embedder, never by a default one.
            index = VectorStoreIndex(library_nodes(self.settings, self.embedder), embed_model=embed_model,
                                     show_progress=False)
            self._engine = index.as_query_engine(llm=llm, similarity_top_k=self.settings.top_k, streaming=True)
            self.model = getattr(llm, "model", "")
        return self._engine

    def answer(self, item: QAItem) -> PipelineOutput:
        from llama_index.core.schema import QueryBundle

        from assistant.engine.answer import looks_like_abstention

        engine = self._ready()
        timings: dict[str, float] = {}
        start = time.perf_counter()
        bundle = QueryBundle(item.question)
        nodes = engine.retrieve(bundle)  # what engine.query() does first
        timings["retrieve_s"] = round(time.perf_counter() - start, 3)
        gen_start = time.perf_counter()
        response = engine.synthesize(bundle, nodes)  # ... and then this: the default query engine, unchanged
        pieces = []
        for piece in response.response_gen:
            if not pieces:
                timings["first_token_s"] = round(time.perf_counter() - gen_start, 3)
            pieces.append(piece)
        timings["generate_s"] = round(time.perf_counter() - gen_start, 3)
        timings["total_s"] = round(time.perf_counter() - start, 3)
        text = "".join(pieces).strip()
        passages = tuple(PassageRecord(chunk_id=n.node.node_id, arxiv_id=n.node.metadata.get("arxiv_id", ""),
                                       text=n.node.get_content(), score=round(float(n.score or 0.0), 5),
                                       source="llama-index", pages=n.node.metadata.get("page", ""))
                         for n in nodes)
        prompt_chars = sum(len(p.text) for p in passages) + len(item.question)
        return PipelineOutput(answer=text, abstained=not text or text == "Empty Response" or looks_like_abstention(text),
                              passages=passages, timings=timings, model=self.model,
                              tokens={"llm_calls": 1, "prompt_chars": prompt_chars, "prompt_tokens": 0,
                                      "completion_tokens": len(pieces), "exact": False},
                              detail={"pipeline": "llama-index VectorStoreIndex + default query engine",
                                      "similarity_top_k": self.settings.top_k})

    def close(self) -> None:
        pass
