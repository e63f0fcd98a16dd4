# Two entry points: `make demo` and `make test`. Both create .venv when missing and
# install everything the project needs; nothing installed by hand is assumed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, so nothing later pulls a CUDA build from the registry.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depthlens demo -o demo-output

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

test: $(STAMP) lint
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
