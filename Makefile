# `make demo` and `make test` work from a fresh clone: both create .venv and install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BACKENDS := tensorflow jax torch
# Two test processes (one per core on CI's machine; at most 4 elsewhere), whole files per process
# so that module fixtures (the distributed runs) run once.
PYTEST_ARGS ?= -q -n auto --maxprocesses 4 --dist loadfile

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c .ci/constraints.txt -e ".[tensorflow,jax,torch,dev]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m kx.demo

# The whole suite once per backend; fails if any backend fails (but runs them all).
test: $(VENV)/.installed
	@status=0; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b $(PY) -m pytest $(PYTEST_ARGS) || status=1; \
	done; exit $$status

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check kx tests benchmarks

bench: $(VENV)/.installed
	for s in benchmarks/*.py; do $(PY) $$s || exit 1; done

clean:
	rm -rf $(VENV)
