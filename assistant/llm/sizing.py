"""How much KV cache the managed server needs: sized to what the answer path sends, not vLLM's default.

On the CPU vLLM reserves its whole KV cache up front. The 1.5B's cache costs 28 layers x 2 KV heads x 128
dims x K and V = 14,336 values a token: 57 KB in float32, 29 KB in bfloat16, so 4 sequences of 4,096
tokens need 0.94 GB in float32; the 2 GiB reserved before held ~37,000 tokens that no question uses.
"""
from __future__ import annotations

import json
from pathlib import Path

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FALLBACK_GIB = 2  # a model whose config.json we cannot read (a Hugging Face name): vLLM's old default here


def kv_bytes_per_token(model_dir: Path, dtype: str) -> int | None:
    """K and V bytes one token takes in every layer, from the model's config.json; None if unknown."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
        config = config.get("text_config", config)
        layers = int(config["num_hidden_layers"])
        heads = int(config.get("num_key_value_heads") or config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None
    return 2 * layers * heads * head_dim * BYTES.get(dtype, 4)


def kv_cache_bytes(model_dir: Path, dtype: str, max_model_len: int, sequences: int) -> int:
    """Room for `sequences` full-length sequences at once (a question, a prefetch, tree-building workers),
    rounded up to 64 MiB; vLLM refuses to start with less than one."""
    per_token = kv_bytes_per_token(model_dir, dtype)
    if per_token is None:
        return FALLBACK_GIB * 2**30
    need = per_token * max_model_len * max(1, sequences)
    step = 64 * 2**20
    return -(-need // step) * step
