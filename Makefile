# The two commands of the README:
#   make demo   set up (.venv) and run the pipeline on the embedded demo config
#   make test   set up (.venv) and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: this CPU wheel is on every machine here, while an unpinned
# `torch` (pulled in by transformers/gpytorch) would download GBs of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-fast clean

$(BIN)/addgp: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/addgp

demo: setup
	$(BIN)/addgp run configs/demo.yaml

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not integration and not slow"

clean:
	rm -rf runs .pytest_cache
