# Two entry points: `make demo` and `make test`. Both create .venv when missing and
# install everything the project needs; nothing installed by hand is assumed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean chromium

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

# tests/serve/test_page.py drives Debian's Chromium through playwright (playwright's own
# browser download is never used). Without it, and without root's apt-get to install it,
# that test skips with a reason; every other test runs as before.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	      || echo "note: installing chromium failed; the browser test will be skipped"; \
	  else \
	    echo "note: chromium is missing and cannot be installed here (needs apt-get as root);" \
	      "the browser test will be skipped"; \
	  fi; }

test: $(STAMP) lint chromium
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
