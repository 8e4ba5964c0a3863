"""Prompts are files in prompts/, loaded by name; rendering checks the fields so a renamed placeholder fails loudly."""
from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class PromptError(KeyError):
    pass


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str

    @property
    def fields(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.template) if f}

    def render(self, **values: object) -> str:
        missing = self.fields - values.keys()
        extra = values.keys() - self.fields
        if missing or extra:
            raise PromptError(f"prompt {self.name!r}: missing fields {sorted(missing)}, unexpected {sorted(extra)}")
        return self.template.format(**values)


@lru_cache(maxsize=64)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() + "\n"


def load_prompt(name: str, prompts_dir: Path) -> Prompt:
    path = Path(prompts_dir) / f"{name}.txt"
    if not path.exists():
        raise PromptError(f"no prompt file {path}")
    return Prompt(name=name, template=_read(path))


def prompt_version(name: str, prompts_dir: Path) -> str:
    """Short content hash of a prompt file: provenance records which wording produced an answer."""
    import hashlib

    return hashlib.sha1(load_prompt(name, prompts_dir).template.encode()).hexdigest()[:8]
