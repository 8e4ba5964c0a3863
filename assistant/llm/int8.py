"""int8 weights for the managed server: a bf16 model folder -> its W8A8 twin, made once and kept beside it.

On a CPU with int8 dot products (AVX-512 VNNI or AMX) vLLM runs compressed-tensors W8A8 layers through
oneDNN's int8 GEMM, and prefill, the cost that decides the time to the first token here, is ~1.5x faster than
in bfloat16 (README, "Answering"). The twin holds each linear layer's weight as int8 with one scale per
output channel (round to nearest: the bf16 weights were themselves dequantised from 4-bit GGUF blocks, so
there is no finer original to calibrate against); activations are quantised per token at run time, so no
calibration data is needed. Embeddings, norms and the LM head stay in bfloat16.

    python -m assistant.llm.int8 SRC [DST]     # DST defaults to SRC-w8a8
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

SUFFIX = "-w8a8"
STAMP = ".w8a8"  # what the twin was made from: the source's weights digest and this recipe's version
RECIPE = "rtn-channel-int8/token-dynamic-int8 v1"
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_INT = {"num_bits": 8, "type": "int", "symmetric": True, "group_size": None, "block_structure": None,
        "actorder": None, "observer_kwargs": {}}
QUANTIZATION_CONFIG = {
    "quant_method": "compressed-tensors", "format": "int-quantized", "quantization_status": "compressed",
    "global_compression_ratio": None, "kv_cache_scheme": None, "ignore": ["lm_head"],
    "config_groups": {"group_0": {
        "targets": ["Linear"], "output_activations": None,
        "weights": {**_INT, "strategy": "channel", "dynamic": False, "observer": "minmax"},
        "input_activations": {**_INT, "strategy": "token", "dynamic": True, "observer": None}}},
}


class Int8Error(RuntimeError):
    """The twin could not be made (a source that is not a bf16 safetensors folder, a failed write)."""


def twin_path(source: Path) -> Path:
    return source.with_name(source.name + SUFFIX)


def can_quantise(source: Path) -> bool:
    """A local bf16/fp32 safetensors folder, not already quantised."""
    try:
        config = json.loads((source / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "quantization_config" not in config and any(source.glob("*.safetensors"))


def source_digest(source: Path) -> str:
    """Names and sizes of the source's weight files, and its assembly stamp when it has one: cheap, and it
    changes whenever the weights are replaced."""
    files = sorted(source.glob("*.safetensors"))
    if not files:
        raise Int8Error(f"{source} holds no *.safetensors weights to quantise")
    digest = hashlib.sha256(RECIPE.encode())
    for f in files:
        digest.update(f"{f.name}:{f.stat().st_size}\n".encode())
    stamp = source / ".assembled"
    if stamp.is_file():
        digest.update(stamp.read_bytes())
    return digest.hexdigest()


def is_current(source: Path, twin: Path) -> bool:
    stamp = twin / STAMP
    return (twin / "config.json").is_file() and stamp.is_file() and stamp.read_text().strip() == source_digest(source)


def ensure_twin(source: Path, python: str = sys.executable, announce: Callable[[], None] = lambda: None) -> Path:
    """The W8A8 twin of `source`, made now (in a child process: it holds the whole model in memory for
    ~30 s; `announce` is called first) unless a current one exists."""
    twin = twin_path(source)
    if is_current(source, twin):
        return twin
    announce()
    result = subprocess.run([python, "-m", "assistant.llm.int8", str(source), str(twin)], capture_output=True,
                            text=True)
    if result.returncode != 0 or not is_current(source, twin):
        raise Int8Error(f"making int8 weights from {source} failed: {result.stderr.strip()[-800:]}")
    return twin


def quantise(source: Path, twin: Path) -> None:
    """Write the twin into a temporary folder beside it, then rename: a killed run leaves no half twin."""
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((source / "config.json").read_text())
    if "quantization_config" in config:
        raise Int8Error(f"{source} is already quantised ({config['quantization_config'].get('quant_method')})")
    weights: dict[str, torch.Tensor] = {}
    for f in sorted(source.glob("*.safetensors")):
        for name, w in load_file(f).items():
            if name.endswith(".weight") and name.split(".")[-2] in LINEAR:
                w32 = w.float()
                scale = w32.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
                weights[name] = torch.round(w32 / scale).clamp(-127, 127).to(torch.int8).contiguous()
                weights[name[:-len("weight")] + "weight_scale"] = scale.contiguous()  # float32, as vLLM holds it
            else:
                weights[name] = w.contiguous()
    if not any(v.dtype == torch.int8 for v in weights.values()):
        raise Int8Error(f"{source} has no {'/'.join(LINEAR)} layers: not a Llama/Qwen-style model")
    config["quantization_config"] = QUANTIZATION_CONFIG
    twin.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".tmp-{twin.name}-", dir=twin.parent) as tmp_name:
        staged = Path(tmp_name) / "out"
        staged.mkdir()
        save_file(weights, staged / "model.safetensors", metadata={"format": "pt"})
        for f in source.iterdir():
            if f.is_file() and not f.name.endswith((".safetensors", ".safetensors.index.json", ".gguf")):
                shutil.copy(f, staged / f.name)
        (staged / "config.json").write_text(json.dumps(config, indent=2))
        (staged / STAMP).write_text(source_digest(source) + "\n")
        if twin.exists():
            shutil.rmtree(twin)  # a stale twin of other weights
        os.replace(staged, twin)


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    source = Path(sys.argv[1]).resolve()
    twin = Path(sys.argv[2]).resolve() if len(sys.argv) == 3 else twin_path(source)
    try:
        quantise(source, twin)
    except Int8Error as exc:
        raise SystemExit(str(exc)) from None
    print(f"int8 weights: {twin}")


if __name__ == "__main__":
    main()
