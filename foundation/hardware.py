"""What the machine computes fast: read once per process by the model server and the embedder."""
from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


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
