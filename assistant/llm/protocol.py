"""The LLM protocol the engine depends on; backends live in assistant/llm/client.py."""
from __future__ import annotations

from contextlib import closing
from typing import Any, Iterator, Protocol, runtime_checkable

Message = dict[str, str]


class LLMError(RuntimeError):
    """The model server failed, timed out, or returned something unusable."""


@runtime_checkable
class LLM(Protocol):
    model: str

    def complete(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 json_schema: dict[str, Any] | None = None, stop: list[str] | None = None) -> str:
        """Whole reply text. With json_schema the server constrains the reply to that schema."""
        ...

    def stream(self, messages: list[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]:
        """Reply text in pieces as they are generated; raises LLMError if the stream breaks."""
        ...


def without_candidates(stream: Iterator[str]) -> Iterator[tuple[str, list[dict[str, float]]]]:
    """A plain text stream in the shape of stream_choices; closing this closes the stream."""
    with closing(stream):
        for piece in stream:
            yield piece, []
