# Two commands from a fresh clone:
#   make serve   install the server into .venv and run it on the default config
#   make test    install the server and the dev tools into .venv and run the tests
# torch is installed first and pinned, so that no range pulls a multi-GB CUDA build. On a machine
# that reaches download.pytorch.org, TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gets
# the CPU wheel from there.

PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX_URL ?=
BIN := $(VENV)/bin
TORCH_INDEX := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)

.PHONY: install install-dev serve test lint protos bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0 $(TORCH_INDEX)
	$(BIN)/pip install -q -e ".[server]"

install-dev: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0 $(TORCH_INDEX)
	$(BIN)/pip install -q -e ".[server,dev]"
	cd tests/node && npm ci --no-audit --no-fund --silent

serve: install
	$(BIN)/dragoman serve $(ARGS)

test: install-dev
	$(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

protos: install-dev
	$(BIN)/python scripts/gen_protos.py

bench: install-dev
	$(BIN)/python -m bench $(ARGS)
