"""How summary trees are built (`TreeConfig`, filled from Settings and the server's context length) and
what a build reports."""
from __future__ import annotations

from typing import Any, Callable

import httpx
from pydantic import BaseModel, ConfigDict, Field

from foundation.config import Settings
from foundation.types import ProgressEvent

PROMPT_OVERHEAD_TOKENS = 200  # instructions and headers around the passages in a summary prompt
TOKENIZER_MARGIN = 0.8  # budgets count MiniLM tokens; the LLM's tokenizer may need ~20% more

Progress = Callable[[ProgressEvent], None]


class TreeConfig(BaseModel):
    """How trees are built; `from_settings` fills it from Settings (and the server's context length)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    context_tokens: int = Field(default=2048, description="The LLM's context length")
    summary_tokens: int = Field(default=160, description="Cap on generated tokens per summary")
    concurrency: int = Field(default=4, description="Summaries in flight at once (the server batches them)")
    max_input_tokens: int = Field(default=1500, description="Cap on children tokens per summary prompt, whatever the "
                                  "context: a 0.5B model summarises ~1.5k tokens better than 3k, and prefill stays short")
    reducer: str = Field(default="auto", description="auto (UMAP from 25 points, else PCA) | umap | pca | none")
    seed: int = 0
    topics: bool = Field(default=True, description="Also build the corpus topic level")

    @property
    def input_budget(self) -> int:
        """Embedding-model tokens of children that fit in one summary prompt."""
        room = int((self.context_tokens - self.summary_tokens - PROMPT_OVERHEAD_TOKENS) * TOKENIZER_MARGIN)
        return max(64, min(self.max_input_tokens, room))

    @classmethod
    def from_settings(cls, settings: Settings, llm: Any = None, **overrides: Any) -> "TreeConfig":
        values: dict[str, Any] = {
            "summary_tokens": settings.raptor_summary_tokens,
            "concurrency": settings.raptor_concurrency,
            "context_tokens": settings.raptor_context_tokens or server_context(llm) or settings.vllm_max_model_len,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def server_context(llm: Any) -> int | None:
    """max_model_len that a vLLM server reports in /v1/models, when the LLM is one."""
    base = getattr(llm, "base_url", None)
    if not base:
        return None
    try:
        data = httpx.get(f"{base}/models", timeout=5.0).json()["data"]
        for card in data:
            if card.get("id") == getattr(llm, "model", None) and card.get("max_model_len"):
                return int(card["max_model_len"])
        return int(data[0]["max_model_len"]) if data and data[0].get("max_model_len") else None
    except Exception:  # an OpenAI-compatible server need not report it: fall back to settings
        return None


class BuildReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    papers_built: list[str] = Field(default_factory=list)
    papers_skipped: list[str] = Field(default_factory=list, description="Tree already current")
    papers_failed: dict[str, str] = Field(default_factory=dict)
    summaries: int = Field(default=0, description="Summaries written by this run")
    reused: int = Field(default=0, description="Summaries found done (checkpoints of a killed run)")
    llm_calls: int = 0
    retries: int = 0
    fallbacks: int = Field(default=0, description="Summaries that fell back to extracts after two bad replies")
    splits: int = Field(default=0, description="Oversized inputs split before summarising")
    topics_written: int = 0
    topics_removed: int = 0
    seconds: float = 0.0
    paper_seconds: dict[str, float] = Field(default_factory=dict)
    llm_seconds: float = 0.0

    @property
    def rate_per_min(self) -> float:
        return 60.0 * self.summaries / self.seconds if self.seconds else 0.0
