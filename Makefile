# The two commands of the README:
#   make demo   set up (.venv) and run the pipeline on the embedded demo config
#   make test   set up (.venv) and run the test suite
# and `make lock`, which regenerates the lock files (docs/installing.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every install is the locked one: locks/requirements.lock (all of addgp[test] but torch) and
# locks/torch-cpu.lock (the CPU torch wheel), exact versions with hashes, no resolution at
# install time. An unpinned `torch` would download GBs of CUDA packages; for a GPU build set
# TORCH_INSTALL, e.g. TORCH_INSTALL='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'.
# The locked CPU wheel is first looked for where pip is configured to look (PIP_INDEX_URL, a
# mirror, PIP_FIND_LINKS, the cache) and only then on the PyTorch CPU index: an offline machine
# with the wheel at hand no longer waits out pip's retries against an index it cannot reach.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_LOCKED := --no-deps --require-hashes -r locks/torch-cpu.lock
TORCH_INSTALL ?= $(TORCH_LOCKED)
ifeq ($(TORCH_INSTALL),$(TORCH_LOCKED))
TORCH_FALLBACK ?= $(TORCH_LOCKED) --extra-index-url $(TORCH_CPU_INDEX)
endif
LOCKS := locks/requirements.lock locks/torch-cpu.lock

.PHONY: setup demo test test-fast lint lock clean

$(BIN)/addgp: pyproject.toml $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_INSTALL) \
	  || { test -n "$(TORCH_FALLBACK)" && echo "torch: not where pip looks; trying $(TORCH_CPU_INDEX)" \
	       && $(BIN)/python -m pip install --quiet $(TORCH_FALLBACK); }
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r locks/requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

setup: $(BIN)/addgp

demo: setup
	$(BIN)/addgp run configs/demo.yaml

# Lint, format and type check from the repo root, as CI runs them (config in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# PYTEST_ARGS: extra pytest options; CI (.ci/run) passes the coverage ones there.
PYTEST_ARGS ?=
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not integration and not slow"

# Regenerate the locks after changing pyproject.toml or locks/torch-cpu.in; keeps existing
# pins. `make lock LOCK_ARGS=--upgrade` moves every package to its newest allowed release.
lock: setup
	$(BIN)/python -m pip install --quiet -e ".[lock]"
	PYTHON=$(BIN)/python TORCH_CPU_INDEX=$(TORCH_CPU_INDEX) locks/update.sh $(LOCK_ARGS)

clean:
	rm -rf runs .pytest_cache .coverage
