# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed

.PHONY: demo test test-fast lint install install-dev bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install -e .
	touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[dev]"
	touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)
install-dev: $(STAMP)

demo: $(STAMP_RUN)
	$(VENV)/bin/lmfloss demo --out demo-out

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# Everything, as CI runs it (.ci/run): every tier, the browser included.
# Test processes (pytest-xdist): one per core of the 2-core machines; PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

# The tier to run while editing: no training, no browser (markers in pyproject.toml).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow and not browser"

bench: $(STAMP_RUN)
	$(PY) benchmarks/bench_losses.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
