"""Loaded by the vLLM server's Python only when the ISA is capped (ONEDNN_MAX_CPU_ISA=AVX2): torch still
reports AVX-512 to vLLM, which would then load its AVX-512 kernels; capped, it must load the AVX2 ones, as
on a real AVX2-only CPU. oneDNN and ATen read their own caps from the environment."""
import os

if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2"):
    try:
        import torch.cpu

        torch.cpu._is_avx512_supported = lambda: False
        torch.cpu._is_avx512_bf16_supported = lambda: False
        torch.cpu._is_amx_tile_supported = lambda: False
    except Exception:  # noqa: BLE001 - a shim must never stop the interpreter from starting
        pass
