# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MIRROR ?= $(abspath ../shared/papers)
SEEDS ?= $(wildcard ../shared/seeds/*.txt)
QUESTION ?= Why does the Transformer scale dot products by 1/sqrt(d_k)?
export PAPER_ASSISTANT_MIRROR ?= $(if $(wildcard $(MIRROR)),$(MIRROR),)

.PHONY: setup setup-app setup-vllm setup-model-small setup-model-large run test test-fast bench clean

setup: setup-app setup-vllm setup-model-large

setup-app: $(VENV)/.stamp
$(VENV)/.stamp: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python scripts/compile_colbert.py
	touch $@

setup-vllm:
	bash scripts/setup_vllm.sh

setup-model-small:
	$(BIN)/python scripts/assemble_model.py --model qwen2.5-coder-0.5b-instruct

setup-model-large:
	$(BIN)/python scripts/assemble_model.py --model qwen2.5-coder-1.5b-instruct

run: setup
	$(BIN)/paper-assistant ingest $(SEEDS)
	$(BIN)/paper-assistant papers
	$(BIN)/paper-assistant ask "$(QUESTION)"

test: setup-app setup-vllm setup-model-small
	$(BIN)/python -m pytest -q --timeout=1800 tests

# The edit loop: no model server, no embedder or other model, no ColBERT build (markers in pyproject.toml).
FAST := not llm and not model and not colbert and not slow
test-fast: setup-app
	# Two workers: most fast tests wait on sockets and child processes, not the CPU (3:08 serial, 1:54 with -n 2, quiet Xeon)
	$(BIN)/python -m pytest -q --timeout=300 -n 2 -m "$(FAST)" tests

bench: setup-app
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieve.py
	$(BIN)/python bench/recall.py --dataset ../shared/eval/dev.jsonl

clean:
	rm -rf $(VENV) .venv-vllm .models
