"""What the machine computes fast: read once per process by the model server and the embedder."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path


# The flags that choose a path: what the bench scripts print beside every number.
DECISIVE_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def isa_cap() -> str | None:
    """'avx2' when ONEDNN_MAX_CPU_ISA caps this machine to AVX2: an AVX-512 machine then chooses, and the
    server computes, as an AVX2-only one would (the way to measure the AVX2 path without such a CPU)."""
    return "avx2" if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2") else None


@functools.lru_cache(maxsize=1)
def _real_cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


def _cpu_flags() -> frozenset[str]:
    flags = _real_cpu_flags()
    if isa_cap() == "avx2":
        # AVX2 alone: no 512-bit registers, no AMX; AVX-VNNI only where the cap says AVX2_VNNI.
        vnni = "VNNI" in os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
        return frozenset(f for f in flags if not f.startswith(("avx512", "amx")) and (vnni or f != "avx_vnni"))
    return flags


def cpu_kind() -> str:
    """'AVX-512 BF16/VNNI', 'AVX-512', 'AVX2+VNNI', 'AVX2' or 'older', with '(capped from AVX-512)' when capped."""
    flags = _cpu_flags()
    if {"avx512_bf16", "avx512_vnni"} <= flags:
        kind = "AVX-512 BF16/VNNI"
    elif "avx512f" in flags:
        kind = "AVX-512"
    elif "avx2" in flags:
        kind = "AVX2+VNNI" if "avx_vnni" in flags else "AVX2"
    else:
        kind = "older"
    if isa_cap() and "avx512f" in _real_cpu_flags():
        kind += " (capped from AVX-512 by ONEDNN_MAX_CPU_ISA)"
    return kind


def cpu_description() -> str:
    """The CPU's model name, its kind and the decisive flags present: one line for a bench's header."""
    name = ""
    try:
        name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), "")
    except OSError:
        pass
    flags = _cpu_flags()
    present = " ".join(f for f in DECISIVE_FLAGS if f in flags) or "none"
    return f"{name or 'unknown CPU'}; {cpu_kind()}; {os.cpu_count()} cores; flags: {present}"


def cpu_has_native_bf16() -> bool:
    """A CPU with bfloat16 matrix instructions (AVX-512 BF16 or AMX); elsewhere torch emulates bfloat16,
    slower than float32."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def cpu_has_int8_dot() -> bool:
    """A CPU with int8 dot-product instructions wide enough for oneDNN's int8 GEMM (AVX-512 VNNI or AMX)."""
    return bool({"avx512_vnni", "amx_int8"} & _cpu_flags())


@functools.lru_cache(maxsize=1)
def has_cuda_gpu() -> bool:
    return bool(shutil.which("nvidia-smi")) and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def fast_bf16() -> bool:
    """A CUDA GPU, or a CPU with native bfloat16."""
    return has_cuda_gpu() or cpu_has_native_bf16()
